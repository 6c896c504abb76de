//! `convoy dashboard` on the sandbox's world: the sandbox's release held at the approval, plus a
//! release still collecting, one whose manifest was refused, and one unreadable record, all made by
//! Convoy's real handlers on moto (the unreadable one written by hand, as a broken write would
//! leave it). The dashboard is the real `convoy` binary, reaching AWS through the stand-in.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use convoy::release::State;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;

use crate::fixtures;
use crate::moto::REGION;
use crate::runtime::binary;
use crate::sandbox::{self, Held, Options, RELEASE, SERVICE};

/// The release still waiting for its images, and the one whose manifest was refused.
pub const COLLECTING: &str = "5e6f7a8";
pub const REFUSED: &str = "9b8c7d6";
/// A record that is not JSON.
pub const UNREADABLE: &str = "0badc0d";

pub struct DashboardWorld {
    pub held: Held,
}

/// Runs the sandbox's release up to its approval, then adds the other releases.
pub async fn world(id: &str, verbose: bool) -> Result<DashboardWorld, String> {
    let finished =
        sandbox::run(Options { id: id.to_owned(), verbose, hold_for_approval: true, ..Options::default() }).await?;
    let held =
        finished.held.ok_or_else(|| format!("the release did not wait for approval: {}", finished.release.state))?;
    if !matches!(finished.release.state, State::AwaitingApproval { .. }) {
        return Err(format!("expected the release to await approval: {}", finished.release.state));
    }
    let world = &held.world;
    let convoy = world.convoy(&[SERVICE], &["laravel-app", "laravel-app-nginx"]);
    let manifest = |release: &str, nginx: String| {
        json!({
            "version": 1, "release": release, "service": SERVICE,
            "images": {"laravel": world.uri("laravel-app", release), "nginx": nginx},
            "verify": {"path": "/", "expect_status": 200, "expect_body": release},
            "approval": "manual"
        })
    };
    let uploads = [
        // Its images are never pushed: it collects.
        (COLLECTING, manifest(COLLECTING, world.uri("laravel-app-nginx", COLLECTING))),
        // An image from a repository Convoy may not deploy from: refused.
        (REFUSED, manifest(REFUSED, format!("123456789012.dkr.ecr.{REGION}.amazonaws.com/not-allowed:{REFUSED}"))),
    ];
    for (release, body) in uploads {
        let key = format!("releases/{SERVICE}/{release}.json");
        let (version, size) = world.upload(&key, &body.to_string()).await;
        let event = fixtures::s3_eventbridge(&world.bucket, &key, version.as_deref(), size);
        convoy::handlers::manifest_uploaded(&convoy, LambdaEvent::new(event, Context::default()))
            .await
            .map_err(|e| format!("manifest-uploaded for {release}: {}", e.error_message))?;
    }
    world
        .s3
        .put_object()
        .bucket(&world.bucket)
        .key(format!("state/{SERVICE}/{UNREADABLE}.json"))
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"{\"schema\": 1, \"key\": "))
        .send()
        .await
        .map_err(|e| format!("write the unreadable record: {e}"))?;
    Ok(DashboardWorld { held })
}

/// The running `convoy dashboard`; stopped when dropped.
pub struct Dashboard {
    /// `http://127.0.0.1:<port>/`.
    pub url: String,
    /// The link it printed, with the per-launch secret: open it first.
    pub link: String,
    /// The secret (the link's `token`, the cookie's value).
    pub secret: String,
    pub port: u16,
    child: Child,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DashboardWorld {
    /// Starts `convoy dashboard --port <port>` (0: any free port) on this world, as a person would
    /// with the sandbox's AWS environment.
    pub fn start_dashboard(&self, port: u16) -> Result<Dashboard, String> {
        let mut command = Command::new(binary("convoy"));
        command
            .env("AWS_ENDPOINT_URL", &self.held.standin.endpoint)
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("CONVOY_STATE_BUCKET", &self.held.world.bucket)
            .env("CONVOY_S3_FORCE_PATH_STYLE", "true")
            // The Services page confirms what each service runs in the sandbox's cluster.
            .env("CONVOY_CLUSTER", self.held.world.cluster())
            .env("USER", "dashboard-operator");
        Dashboard::start(command, port)
    }
}

impl Dashboard {
    /// Runs `command` (the `convoy` binary with its AWS environment) as `dashboard --port <port>`
    /// and reads the link it prints.
    pub fn start(mut command: Command, port: u16) -> Result<Dashboard, String> {
        let mut child = command
            .args(["dashboard", "--port", &port.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("run convoy dashboard: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map_err(|e| format!("read the dashboard's address: {e}"))?;
        // "convoy dashboard: http://127.0.0.1:<port>/?token=<secret> (...)"
        let link = line.split_whitespace().nth(2).unwrap_or_default().to_owned();
        let (url, secret) = link.split_once("?token=").unwrap_or((&link, ""));
        let port = url
            .trim_start_matches("http://127.0.0.1:")
            .trim_end_matches('/')
            .parse()
            .map_err(|_| format!("the dashboard did not print its address: {line:?}"))?;
        let (url, secret) = (url.to_owned(), secret.to_owned());
        Ok(Dashboard { url, link, secret, port, child })
    }
}

/// The release the sandbox held for approval.
pub fn held_release() -> (&'static str, &'static str) {
    (SERVICE, RELEASE)
}
