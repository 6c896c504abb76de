//! The `manifest-uploaded` Lambda: wiring only (see `convoy::handlers::manifest_uploaded`).

use lambda_runtime::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    convoy::startup::init_logging();
    let convoy = convoy::startup::convoy_from_env().await?;
    run(service_fn(|event| convoy::handlers::manifest_uploaded(&convoy, event))).await
}
