//! In-memory fakes of the ports, one file per AWS adapter file (`adapters/aws/`), each faithful to
//! its port's contract (conditional writes included), so the use cases can be tested fast and
//! under real concurrency.

mod cloudtrail;
mod cloudwatch;
mod codedeploy;
mod codepipeline;
mod ecr;
mod ecs;
mod ecs_native;
mod eventbridge;
mod logs;
mod s3;
mod scheduled;
mod upload_trail;

use std::sync::Mutex;

pub use cloudtrail::MemoryApiCalls;
pub use cloudwatch::MemoryWatch;
pub use codedeploy::{DeployCall, MemoryCodeDeploy};
pub use codepipeline::{MemoryPipelines, WrittenBundle};
pub use ecr::{MemoryImageChecks, MemoryRegistry};
pub use ecs::MemoryTasks;
pub use ecs_native::{MemoryServiceDeployments, ServiceDeploymentCall};
pub use eventbridge::MemoryEvents;
pub use logs::MemoryLogs;
pub use s3::{MemoryDocuments, MemoryObjects, MemoryStore};
pub use scheduled::MemoryScheduledTasks;
pub use upload_trail::MemoryUploadTrail;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic in another test thread must not hide this one's result behind a poisoned lock.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
