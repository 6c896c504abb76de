//! The local sandbox (the README's first command): one release through Convoy's real function
//! binaries and CLI against local AWS. See `convoy_tests::sandbox` for what is real and what
//! stands in. `--migration-fails`: the migration exits 1. `--wrong-version`: the green version
//! answers the old version, so verification fails. `--pipeline`: deploy through a CodePipeline
//! (Convoy's bundle and execution; the sandbox plays the pipeline's CodeDeployToECS action).
//! `--ecs-native`: deploy through ECS native blue/green (`UpdateService`; the sandbox plays ECS's
//! lifecycle hooks and the end of the service deployment).
//! `--init`: the service stands behind a load balancer (moto's ELB), and the functions get the
//! settings `convoy init` writes for it instead of the sandbox's own.
//! `--services`: a release group's release: a worker (ECS rolling update), then the web service,
//! from one version 2 manifest with one migration (with `--wrong-version`, web fails and the worker
//! goes back).
//! `--dashboard [--port N]`: the release stops at its approval, a few more releases join it, and
//! `convoy dashboard` serves them (approve or reject from the page) until Ctrl-C.

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--dashboard") {
        return dashboard(&args).await;
    }
    let options = convoy_tests::sandbox::Options {
        migration_fails: args.iter().any(|a| a == "--migration-fails"),
        wrong_version: args.iter().any(|a| a == "--wrong-version"),
        via_pipeline: args.iter().any(|a| a == "--pipeline"),
        ecs_native: args.iter().any(|a| a == "--ecs-native"),
        aws_unreachable: false,
        id: String::new(),
        verbose: true,
        hold_for_approval: false,
        settings_from_init: args.iter().any(|a| a == "--init"),
        typed: None,
    };
    if args.iter().any(|a| a == "--services") {
        return services(options).await;
    }
    match convoy_tests::sandbox::run(options).await {
        Ok(finished) => println!("\nfinal state: {}", finished.release.state),
        Err(why) => {
            eprintln!("\nthe sandbox failed: {why}");
            std::process::exit(1);
        }
    }
}

/// `--services`: one release of a web service and a worker from one manifest (`--wrong-version`:
/// web fails its verification and the worker is put back).
async fn services(options: convoy_tests::sandbox::Options) {
    match convoy_tests::sandbox_services::run_services(options).await {
        Ok(finished) => {
            println!("\nfinal state: {}", finished.release.state);
            for section in &finished.release.services {
                println!("  {}: {}", section.service, convoy::release::services::section_words(&section.state));
            }
        }
        Err(why) => {
            eprintln!("\nthe sandbox failed: {why}");
            std::process::exit(1);
        }
    }
}

/// `--dashboard`: leaves `convoy dashboard` running on the sandbox's releases until Ctrl-C.
async fn dashboard(args: &[String]) {
    let port = args
        .iter()
        .position(|a| a == "--port")
        .and_then(|i| args.get(i + 1))
        .map_or(Ok(3100), |p| p.parse::<u16>())
        .unwrap_or_else(|_| {
            eprintln!("--port takes a port number");
            std::process::exit(2)
        });
    let world = match convoy_tests::dashboard::world("", true).await {
        Ok(world) => world,
        Err(why) => {
            eprintln!("\nthe sandbox failed: {why}");
            std::process::exit(1);
        }
    };
    let dashboard = match world.start_dashboard(port) {
        Ok(dashboard) => dashboard,
        Err(why) => {
            eprintln!("\nthe dashboard did not start: {why}");
            std::process::exit(1);
        }
    };
    println!("\n\x1b[1mconvoy dashboard on the sandbox's releases: {}\x1b[0m", dashboard.link);
    println!("  laravel-app/4cf03d1 awaits approval: {}release/laravel-app/4cf03d1", dashboard.url);
    println!("  (moto and the stand-in live in this process: Ctrl-C stops everything)");
    // Serves until the person stops it (Ctrl-C reaches the dashboard too: same process group).
    std::future::pending::<()>().await;
}
