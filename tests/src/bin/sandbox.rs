//! The local sandbox (the README's first command): one release through Convoy's real function
//! binaries and CLI against local AWS. See `convoy_tests::sandbox` for what is real and what
//! stands in. `--migration-fails`: the migration exits 1. `--wrong-version`: the green version
//! answers the old version, so verification fails. `--pipeline`: deploy through a CodePipeline
//! (Convoy's bundle and execution; the sandbox plays the pipeline's CodeDeployToECS action).
//! `--ecs-native`: deploy through ECS native blue/green (`UpdateService`; the sandbox plays ECS's
//! lifecycle hooks and the end of the service deployment).

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let options = convoy_tests::sandbox::Options {
        migration_fails: args.iter().any(|a| a == "--migration-fails"),
        wrong_version: args.iter().any(|a| a == "--wrong-version"),
        via_pipeline: args.iter().any(|a| a == "--pipeline"),
        ecs_native: args.iter().any(|a| a == "--ecs-native"),
        aws_unreachable: false,
        id: String::new(),
        verbose: true,
    };
    match convoy_tests::sandbox::run(options).await {
        Ok(finished) => println!("\nfinal state: {}", finished.release.state),
        Err(why) => {
            eprintln!("\nthe sandbox failed: {why}");
            std::process::exit(1);
        }
    }
}
