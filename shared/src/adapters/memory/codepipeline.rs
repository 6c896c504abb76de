//! CodePipeline and its versioned S3 source.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::names::{DeploymentId, PipelineExecutionId, ReleaseKey};

/// A bundle written to a pipeline's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenBundle {
    pub bucket: String,
    pub key: String,
    pub bytes: Vec<u8>,
    pub version: String,
    pub release: ReleaseKey,
}

/// CodePipeline and its versioned S3 source. Like CodePipeline (and unlike moto) it honours
/// `clientRequestToken`; executions run until a test ends them.
#[derive(Default)]
pub struct MemoryPipelines {
    state: Mutex<PipelineState>,
}

#[derive(Default)]
struct PipelineState {
    bundles: Vec<WrittenBundle>,
    starts: Vec<crate::ports::PipelineStart>,
    executions: HashMap<PipelineExecutionId, crate::ports::DeploymentStatus>,
    tokens: HashMap<String, PipelineExecutionId>,
    deployments: HashMap<PipelineExecutionId, DeploymentId>,
}

impl MemoryPipelines {
    pub fn bundles(&self) -> Vec<WrittenBundle> {
        lock(&self.state).bundles.clone()
    }

    /// Every start requested, repeated ones included.
    pub fn starts(&self) -> Vec<crate::ports::PipelineStart> {
        lock(&self.state).starts.clone()
    }

    /// The executions that really started.
    pub fn executions(&self) -> usize {
        lock(&self.state).executions.len()
    }

    /// The deploy action of `execution` reports `deployment`.
    pub fn report_deployment(&self, execution: &PipelineExecutionId, deployment: &DeploymentId) {
        lock(&self.state).deployments.insert(execution.clone(), deployment.clone());
    }
}

#[async_trait]
impl crate::ports::Pipelines for MemoryPipelines {
    async fn write_bundle(
        &self,
        bucket: &str,
        key: &str,
        bundle: Vec<u8>,
        release: &ReleaseKey,
    ) -> Result<String, crate::error::DeployError> {
        let mut state = lock(&self.state);
        let version = format!("v{}", state.bundles.len() + 1);
        state.bundles.push(WrittenBundle {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            bytes: bundle,
            version: version.clone(),
            release: release.clone(),
        });
        Ok(version)
    }

    async fn start(
        &self,
        start: &crate::ports::PipelineStart,
    ) -> Result<PipelineExecutionId, crate::error::DeployError> {
        let mut state = lock(&self.state);
        state.starts.push(start.clone());
        if let Some(execution) = state.tokens.get(&start.token) {
            return Ok(execution.clone());
        }
        let execution =
            PipelineExecutionId::new(&format!("00000000-0000-4000-8000-{:012}", state.executions.len() + 1))
                .map_err(|e| crate::error::DeployError::Rejected(e.to_string()))?;
        state.tokens.insert(start.token.clone(), execution.clone());
        state.executions.insert(execution.clone(), crate::ports::DeploymentStatus::Running);
        Ok(execution)
    }

    async fn status(
        &self,
        pipeline: &str,
        execution: &PipelineExecutionId,
    ) -> Result<crate::ports::DeploymentStatus, crate::error::DeployError> {
        lock(&self.state).executions.get(execution).cloned().ok_or_else(|| {
            crate::error::DeployError::Rejected(format!("pipeline {pipeline} has no execution {execution}"))
        })
    }

    async fn deployment_of(
        &self,
        _: &str,
        execution: &PipelineExecutionId,
    ) -> Result<Option<DeploymentId>, crate::error::DeployError> {
        Ok(lock(&self.state).deployments.get(execution).cloned())
    }
}
