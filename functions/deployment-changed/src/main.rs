//! The `deployment-changed` Lambda: wiring only (see `convoy::handlers::deployment_changed`).

use lambda_runtime::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    convoy::startup::init_logging();
    let convoy = convoy::startup::convoy_from_env_with_cloudtrail().await?;
    run(service_fn(|event| convoy::handlers::deployment_changed(&convoy, event))).await
}
