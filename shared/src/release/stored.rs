//! Reading a record as stored, whatever schema wrote it. Schema 1 (before issue 22) kept every
//! deployment id as a bare string: which kind it was followed from the record's deployment run
//! (the method it was claimed with, and the pipeline execution it started). Those are read into
//! the typed [`DeploymentRef`](crate::names::DeploymentRef) here, once, before the record is
//! deserialised; nothing else in Convoy knows schema 1.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};

use super::{RECORD_SCHEMA, Release};

impl Serialize for Release {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Release::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for Release {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut value = Value::deserialize(deserializer)?;
        type_deployment_ids(&mut value);
        let mut release = Release::deserialize(value).map_err(D::Error::custom)?;
        release.schema = release.schema.max(RECORD_SCHEMA);
        Ok(release)
    }
}

/// Wraps each bare-string deployment id of a schema-1 record in its kind: the state's deployment
/// is the pipeline execution when it is the one the run started, the service deployment when the
/// run is `ecs-native`, else CodeDeploy's; the run's `id` is never the execution.
fn type_deployment_ids(record: &mut Value) {
    let run = &record["deployment"];
    let native = run["method"].as_str() == Some("ecs-native");
    let execution = run["pipeline"]["execution"].as_str().map(str::to_owned);
    let kind = |id: &str| match () {
        _ if execution.as_deref() == Some(id) => "pipeline-execution",
        _ if native => "service-deployment",
        _ => "codedeploy",
    };
    if let Some(id) = record["state"]["deployment"].as_str().map(str::to_owned) {
        record["state"]["deployment"] = json!({ kind(&id): id });
    }
    if let Some(id) = record["deployment"]["id"].as_str().map(str::to_owned) {
        let kind = if native { "service-deployment" } else { "codedeploy" };
        record["deployment"]["id"] = json!({ kind: id });
    }
}
