//! `convoy dashboard`: a local web UI over the state bucket, served on loopback with the person's
//! own AWS environment. Server-rendered pages (maud), no JavaScript, the stylesheet embedded.
//!
//! It must not be a hole on the person's machine: it binds 127.0.0.1 only; every request must
//! name this server in `Host` (`127.0.0.1:<port>` or `localhost:<port>`: a DNS-rebound name is
//! refused); every request, GET too, must carry the per-launch secret, which only the URL printed
//! at start holds (`/?token=…`, as notebook servers do) and which the first visit exchanges for an
//! HttpOnly, SameSite=Strict cookie: any other local process that GETs a page gets a refusal, not
//! a form to approve with the person's credentials; every state-changing request must come from
//! this server's own pages (`Origin`) and carry the per-launch random token the pages embed in
//! their forms.

mod pages;
pub mod stages;
mod svg;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use convoy::adapters::aws::S3Store;
use convoy::error::{ConvoyError, StoreError};
use convoy::names::{ReleaseId, ReleaseKey, ServiceName};
use convoy::ports::ReleaseStore;
use convoy::release::Release;
use convoy::service::Convoy;
use futures_util::StreamExt;
use serde::Deserialize;

use crate::rollback;

/// The most records the overview loads (newest keys are not known before loading: S3 lists by
/// name, so a bucket with more shows a note instead of loading them all).
const MAX_RECORDS: usize = 500;

/// How many of each service's newest releases that went live the Services page shows.
const SERVICE_HISTORY: usize = 20;

pub struct App {
    pub store: S3Store,
    pub bucket: String,
    /// The same use cases the CLI's `approve` and `reject` run (same refusals).
    pub convoy: Convoy,
    /// Per-launch random token every state-changing request must carry.
    pub token: String,
    /// Per-launch secret every request must carry (the printed URL's `token`, then the cookie).
    pub secret: String,
    /// The port actually bound (the `Host`/`Origin` checks need it).
    pub port: u16,
    /// Where manifests go in the state bucket (a rollback's, as `convoy rollback --prefix`).
    pub prefix: String,
}

/// A record under `state/`: read, or why it could not be.
pub enum Loaded {
    Read(Box<Release>),
    Unreadable { key: String, why: String },
}

/// A random token (32 bytes from the OS, hex).
pub fn new_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for the dashboard's token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Serves until the process is stopped. Prints the address once listening.
pub async fn serve(listener: tokio::net::TcpListener, app: App) -> Result<(), String> {
    let app = Arc::new(app);
    let router = Router::new()
        .route("/", get(overview))
        .route("/services", get(services_page))
        .route("/services/{service}/rollback", get(rollback_page).post(roll_back))
        .route("/release/{service}/{release}", get(release_page))
        .route("/release/{service}/{release}/{decision}", get(confirm_page).post(decide))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app);
    axum::serve(listener, router).await.map_err(|e| format!("the dashboard stopped: {e}"))
}

fn allowed_hosts(port: u16) -> [String; 2] {
    [format!("127.0.0.1:{port}"), format!("localhost:{port}")]
}

/// The checks every request passes before any handler runs, and the headers every answer gets.
async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let hosts = allowed_hosts(app.port);
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !hosts.iter().any(|h| h == host) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "Wrong host",
            &format!("This dashboard answers only to http://{} or http://{}.", hosts[0], hosts[1]),
        );
    }
    if let Some(given) = query_token(request.uri())
        && same(given.as_bytes(), app.secret.as_bytes())
    {
        // The printed link: keep the secret in a cookie and drop it from the address bar.
        let mut response = Redirect::to(request.uri().path()).into_response();
        let cookie = format!("{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/", app.secret);
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return response;
    }
    if !cookie_holds(request.headers(), &app.secret) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "Open the dashboard's own link",
            "This dashboard answers only to the browser that opened the link convoy dashboard printed when it \
             started (http://127.0.0.1:<port>/?token=…).",
        );
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let origin = request.headers().get(header::ORIGIN).and_then(|h| h.to_str().ok()).unwrap_or("");
        if !hosts.iter().any(|h| origin == format!("http://{h}")) {
            return refuse(
                StatusCode::FORBIDDEN,
                "Refused: foreign origin",
                "A change must come from this dashboard's own page (its Origin header did not name it).",
            );
        }
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Not `no-referrer`: with it Chromium sends `Origin: null` on the page's own form posts.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The cookie that carries the per-launch secret.
const COOKIE: &str = "convoy_dashboard";

/// The `token` of the request's query, if any.
fn query_token(uri: &axum::http::Uri) -> Option<&str> {
    uri.query()?.split('&').find_map(|pair| pair.strip_prefix("token="))
}

/// Whether the request's `Cookie` header carries the secret.
fn cookie_holds(headers: &axum::http::HeaderMap, secret: &str) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(COOKIE).and_then(|rest| rest.strip_prefix('=')))
        .any(|given| same(given.as_bytes(), secret.as_bytes()))
}

fn refuse(status: StatusCode, title: &str, text: &str) -> Response {
    (status, pages::message(title, text)).into_response()
}

async fn not_found() -> Response {
    refuse(StatusCode::NOT_FOUND, "Not found", "There is no such page.")
}

/// Loads every record under `state/` (at most [`MAX_RECORDS`]); the second value says whether
/// some were left out.
async fn load_all(app: &App) -> Result<(Vec<Loaded>, bool), String> {
    let mut keys = app.store.recorded(None).await.map_err(|e| format!("listing s3://{}/state/: {e}", app.bucket))?;
    let more = keys.len() > MAX_RECORDS;
    keys.truncate(MAX_RECORDS);
    let loaded = futures_util::stream::iter(keys)
        .map(|key| async move {
            let object = S3Store::record_key(&key);
            match app.store.load(&key).await {
                Ok(Some(stored)) => Loaded::Read(Box::new(stored.release)),
                Ok(None) => Loaded::Unreadable { key: object, why: "deleted while the page was read".into() },
                Err(err) => Loaded::Unreadable { key: object, why: err.to_string() },
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    Ok((loaded, more))
}

#[derive(Deserialize, Default)]
pub struct Filter {
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
}

async fn overview(State(app): State<Arc<App>>, Query(filter): Query<Filter>) -> Response {
    match load_all(&app).await {
        Ok((loaded, more)) => pages::overview(&app.bucket, loaded, more, &filter, chrono::Utc::now()).into_response(),
        Err(why) => refuse(StatusCode::BAD_GATEWAY, "The state bucket cannot be read", &why),
    }
}

/// Each service's live release, confirmed with ECS in the dashboard's `--cluster`, and its
/// history (`convoy list --live` and `convoy history`, on one page).
async fn services_page(State(app): State<Arc<App>>) -> Response {
    let cluster = Some(app.convoy.config.cluster.as_str()).filter(|c| !c.is_empty());
    match crate::history::services_live(&app.store, app.convoy.tasks.as_ref(), cluster, SERVICE_HISTORY).await {
        Ok(services) => pages::services(&app.bucket, &services, cluster, chrono::Utc::now()).into_response(),
        Err(why) => refuse(StatusCode::BAD_GATEWAY, "The state bucket cannot be read", &why),
    }
}

/// The key named by a URL, or the page that says why it names none.
fn parse_key(service: &str, release: &str) -> Result<ReleaseKey, Box<Response>> {
    Ok(ReleaseKey::new(parse_service(service)?, parse_release(release)?))
}

/// The record, or the page for a missing or unreadable one.
async fn load_one(app: &App, key: &ReleaseKey) -> Result<Release, Box<Response>> {
    let object = S3Store::record_key(key);
    match app.store.load(key).await {
        Ok(Some(stored)) => Ok(stored.release),
        Ok(None) => Err(Box::new(refuse(
            StatusCode::NOT_FOUND,
            "No such release",
            &format!("There is no record of release {key} (s3://{}/{object}).", app.bucket),
        ))),
        Err(StoreError::Corrupt { detail, .. }) => Err(Box::new(refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Unreadable record",
            &format!("The record s3://{}/{object} is not a release record this Convoy can read: {detail}", app.bucket),
        ))),
        Err(err) => Err(Box::new(refuse(
            StatusCode::BAD_GATEWAY,
            "The record cannot be read",
            &format!("s3://{}/{object}: {err}", app.bucket),
        ))),
    }
}

async fn release_page(State(app): State<Arc<App>>, Path((service, release)): Path<(String, String)>) -> Response {
    let key = match parse_key(&service, &release) {
        Ok(key) => key,
        Err(page) => return *page,
    };
    match load_one(&app, &key).await {
        Ok(release) => pages::release(&release, &app.bucket, chrono::Utc::now()).into_response(),
        Err(page) => *page,
    }
}

/// A release id from a URL or a form, or the page that says it is none.
fn parse_release(release: &str) -> Result<ReleaseId, Box<Response>> {
    release
        .parse()
        .map_err(|e| Box::new(refuse(StatusCode::BAD_REQUEST, "Not a release id", &format!("{release:?}: {e}"))))
}

fn parse_service(service: &str) -> Result<ServiceName, Box<Response>> {
    service
        .parse()
        .map_err(|e| Box::new(refuse(StatusCode::BAD_REQUEST, "Not a service name", &format!("{service:?}: {e}"))))
}

#[derive(Deserialize, Default)]
struct RollbackQuery {
    /// The release to return to (a history row's "Roll back to this"); absent: the one live before.
    #[serde(default)]
    to: Option<String>,
}

/// The page for a rollback that was not submitted: refused by the records (409), or S3 out of
/// reach (502). Nothing was written either way.
fn rollback_refused(service: &ServiceName, refusal: rollback::Refusal) -> Response {
    match refusal {
        rollback::Refusal::Refused(why) => {
            (StatusCode::CONFLICT, pages::rollback_refused(service, &why)).into_response()
        }
        rollback::Refusal::Unavailable(why) => {
            refuse(StatusCode::BAD_GATEWAY, "The state bucket cannot be read or written", &why)
        }
    }
}

/// The confirmation of a rollback: what [`rollback::plan`] (the code `convoy rollback` runs)
/// would submit now. Writes nothing.
async fn rollback_page(
    State(app): State<Arc<App>>,
    Path(service): Path<String>,
    Query(query): Query<RollbackQuery>,
) -> Response {
    let service = match parse_service(&service) {
        Ok(service) => service,
        Err(page) => return *page,
    };
    let to = match query.to.as_deref().filter(|t| !t.is_empty()).map(parse_release).transpose() {
        Ok(to) => to,
        Err(page) => return *page,
    };
    let now = chrono::Utc::now();
    let wanted = rollback::Wanted { service: &service, to: to.as_ref(), of: None, migrate_down: false, at: now };
    match rollback::plan(&app.store, &app.store, &wanted, &app.prefix).await {
        Ok(plan) => pages::rollback_confirm(&service, &plan, &app.token, now).into_response(),
        Err(refusal) => rollback_refused(&service, refusal),
    }
}

#[derive(Deserialize, Default)]
struct RollbackForm {
    #[serde(default)]
    token: String,
    /// The release the page showed live, the one it returns to, and the moment the page was drawn
    /// (unix seconds: it names the rollback, so the same form submits one release however often).
    #[serde(default)]
    of: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    at: String,
    /// The checkbox: present when ticked.
    #[serde(default)]
    migrate_down: Option<String>,
}

/// Submits the confirmed rollback through [`rollback::submit`], the code `convoy rollback` runs,
/// with the dashboard's (the person's) credentials.
async fn roll_back(
    State(app): State<Arc<App>>,
    Path(service): Path<String>,
    form: Result<Form<RollbackForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if let Err(page) = token_holds(&app, &form.token) {
        return *page;
    }
    let parsed = parse_service(&service).and_then(|s| Ok((s, parse_release(&form.of)?, parse_release(&form.to)?)));
    let (service, of, to) = match parsed {
        Ok(parsed) => parsed,
        Err(page) => return *page,
    };
    let Some(at) = form.at.parse().ok().and_then(|s| chrono::DateTime::from_timestamp(s, 0)) else {
        return refuse(StatusCode::BAD_REQUEST, "Not a confirmation", "The form does not say when it was shown.");
    };
    let migrate_down = form.migrate_down.is_some();
    let wanted = rollback::Wanted { service: &service, to: Some(&to), of: Some(&of), migrate_down, at };
    match rollback::submit(&app.store, &app.bucket, &wanted, &app.prefix).await {
        Ok(submitted) => {
            let done = if submitted.written { "submitted" } else { "submitted already, nothing written" };
            errln!("convoy dashboard: release={} rollback of {of} to {to}: {done}", submitted.release);
            let status = if submitted.written { StatusCode::CREATED } else { StatusCode::OK };
            (status, pages::rollback_submitted(&submitted, migrate_down)).into_response()
        }
        Err(refusal) => {
            errln!("convoy dashboard: service={service} rollback of {of} to {to}: not submitted: {refusal}");
            rollback_refused(&service, refusal)
        }
    }
}

fn decision(word: &str) -> Option<bool> {
    match word {
        "approve" => Some(true),
        "reject" => Some(false),
        _ => None,
    }
}

async fn confirm_page(
    State(app): State<Arc<App>>,
    Path((service, release, word)): Path<(String, String, String)>,
) -> Response {
    let Some(approve) = decision(&word) else { return not_found().await };
    let key = match parse_key(&service, &release) {
        Ok(key) => key,
        Err(page) => return *page,
    };
    match load_one(&app, &key).await {
        Ok(release) => pages::confirm(&release, approve, &app.token).into_response(),
        Err(page) => *page,
    }
}

#[derive(Deserialize)]
struct DecideForm {
    #[serde(default)]
    token: String,
}

/// Approves or rejects through [`Convoy::decide`], the code `convoy approve`/`reject` run.
async fn decide(
    State(app): State<Arc<App>>,
    Path((service, release, word)): Path<(String, String, String)>,
    form: Result<Form<DecideForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some(approve) = decision(&word) else { return not_found().await };
    let form = form.map(|Form(f)| f).unwrap_or(DecideForm { token: String::new() });
    if let Err(page) = token_holds(&app, &form.token) {
        return *page;
    }
    let key = match parse_key(&service, &release) {
        Ok(key) => key,
        Err(page) => return *page,
    };
    let verb = if approve { "approve" } else { "reject" };
    // The call is made with the dashboard's (the person's) credentials; the record names the
    // principal once CloudTrail reports it.
    match app.convoy.decide(&key, approve).await {
        Ok(decided) => {
            errln!("convoy dashboard: release={} {verb}: sent on {}", decided.key, decided.deployment);
            Redirect::to(&format!("/release/{}/{}", key.service, key.release)).into_response()
        }
        Err(ConvoyError::Refused(why)) => {
            errln!("convoy dashboard: release={key} {verb}: refused: {why}");
            (StatusCode::CONFLICT, pages::refused(&key, verb, &why)).into_response()
        }
        Err(err) => {
            errln!("convoy dashboard: release={key} {verb}: failed: {err}");
            refuse(StatusCode::BAD_GATEWAY, "The decision could not be made", &err.to_string())
        }
    }
}

/// Refuses a change whose form does not carry this launch's token.
fn token_holds(app: &App, token: &str) -> Result<(), Box<Response>> {
    if same(token.as_bytes(), app.token.as_bytes()) {
        return Ok(());
    }
    Err(Box::new(refuse(
        StatusCode::FORBIDDEN,
        "Refused: no valid token",
        "A change needs the token of this dashboard's launch, which its own pages carry. Reload the page.",
    )))
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_read_from_the_query_and_the_cookie_and_nothing_else() {
        let uri: axum::http::Uri = "/?state=Failed&token=abc".parse().unwrap();
        assert_eq!(query_token(&uri), Some("abc"));
        assert_eq!(query_token(&"/?xtoken=abc".parse().unwrap()), None);
        let mut headers = axum::http::HeaderMap::new();
        assert!(!cookie_holds(&headers, "s3cret"));
        headers.insert(header::COOKIE, HeaderValue::from_static("other=1; convoy_dashboard=s3cret"));
        assert!(cookie_holds(&headers, "s3cret"));
        headers.insert(header::COOKIE, HeaderValue::from_static("convoy_dashboard=s3cre; convoy_dashboardx=s3cret"));
        assert!(!cookie_holds(&headers, "s3cret"));
    }

    #[test]
    fn tokens_are_random_and_compared_whole() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(same(a.as_bytes(), a.as_bytes()));
        assert!(!same(a.as_bytes(), b.as_bytes()));
        assert!(!same(a.as_bytes(), &a.as_bytes()[..63]));
        assert!(!same(b"", a.as_bytes()));
    }
}
