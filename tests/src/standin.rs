//! A stand-in for exactly the AWS operations moto lacks, at the HTTP level: a loopback proxy in
//! front of moto that answers the named JSON-protocol operations (by `X-Amz-Target`) itself,
//! records each request, and forwards every other request to moto untouched.
//!
//! moto 5.2.5 lacks CodeDeploy `PutLifecycleEventHookExecutionStatus`, `ContinueDeployment` and
//! `StopDeployment`, ECS `DescribeServiceDeployments`, `ContinueServiceDeployment`,
//! `ListServiceDeployments`, `DescribeServiceRevisions` and `StopServiceDeployment`, and
//! CodePipeline `ListActionExecutions` (moto runs no actions: the harness, which plays the
//! pipeline's deploy action, also says what that action reported, with [`StandIn::answer`]).
//! Nor does it read Smithy RPC v2 CBOR, the protocol the SDK speaks to CloudWatch: those requests
//! (`GetMetricData`, `DescribeAlarms`) go on to moto as the same AWS JSON 1.0 operation, and
//! moto's answer comes back as CBOR ([`crate::cbor`]); moto keeps the metrics and alarm states.
//!
//! It says no where AWS says no. It keeps each CodeDeploy deployment's state as CodeDeploy does
//! (learned from the `CreateDeployment` answers it forwards, or from [`StandIn::register`]):
//! created → in progress → at the `AfterAllowTestTraffic` hook → (hook Succeeded) still in
//! progress → waiting for the reroute (`Ready`) → shifting (`InProgress`, the original task
//! set's termination wait started: `instanceTerminationWaitTimeStarted`) → `Succeeded`; a Failed hook answer
//! fails it (CodeDeploy rolls back), `StopDeployment` stops it. moto's `GetDeployment` answer is
//! passed on with that status. What moto cannot decide (when CodeDeploy invokes a hook, reaches
//! READY_WAIT, ends the shift) the tests say, as AWS would, with [`StandIn::hook_invoked`],
//! [`StandIn::waits`], [`StandIn::finish`]. Requests that AWS refuses are refused with the
//! service's own error code and HTTP 400 (`{"__type": code, "message": ...}`, JSON 1.1), and
//! recorded like any other, with the refusal.
//!
//! CloudTrail: moto 5.2.5 has no `LookupEvents` (its CloudTrail keeps trails, not events). The
//! stand-in records each call of the four operations that decide a traffic shift (CodeDeploy
//! `ContinueDeployment`/`StopDeployment`, ECS `ContinueServiceDeployment`/`StopServiceDeployment`)
//! as a CloudTrail record: the caller's identity as AWS resolves it (moto's STS
//! `GetCallerIdentity` for the access key that signed the request, never anything the client
//! wrote in the body), the connection's source IP, a fresh `eventID`, and `errorCode` when it was
//! refused. It serves `LookupEvents` (by `EventName`, within `StartTime`/`EndTime`, newest first,
//! paged) over those records, and [`StandIn::api_call_event`] wraps one in the EventBridge "AWS
//! API Call via CloudTrail" event AWS would deliver.
//!
//! ECS native blue/green: moto 5.2.5 keeps no `deploymentConfiguration` (strategy, lifecycle
//! hooks, bake time) and no service deployments. For a service a test declares native
//! ([`StandIn::native_service`]) the stand-in adds the configuration to moto's `DescribeServices`
//! and `UpdateService` answers, and learns from each `UpdateService` it forwards a service
//! deployment (`currentServiceDeployment` in the answer), which it answers
//! `ListServiceDeployments`, `DescribeServiceRevisions`, `DescribeServiceDeployments`,
//! `ContinueServiceDeployment` and `StopServiceDeployment` for; the test says when ECS pauses it
//! ([`StandIn::pause_service_deployment`]), moves it ([`StandIn::service_deployment_at`]) or ends
//! it ([`StandIn::service_deployment_ends`]). A service deployment a test only pauses is known
//! with its PAUSE hook alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One intercepted request: the operation (`X-Amz-Target`), its JSON body, and the error code
/// the stand-in refused it with (`None`: answered as a success).
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub target: String,
    pub body: Value,
    pub refused: Option<String>,
}

/// One AWS request as it reached the stand-in (answered or forwarded): when, the service that
/// signed it (SigV4 credential scope: `s3`, `ecs`, `codedeploy`, ...) and the operation.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: std::time::Instant,
    pub service: String,
    pub operation: String,
}

/// Where a CodeDeploy ECS blue/green deployment is (CodeDeploy's status in the comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `Created`: CodeDeploy has not begun.
    Created,
    /// `InProgress`: the replacement tasks start, test traffic moves.
    InProgress,
    /// `InProgress`: the `AfterAllowTestTraffic` hook was invoked and awaits its answer.
    AtHook,
    /// `InProgress`: the hook passed; CodeDeploy has not reached READY_WAIT yet.
    HookPassed,
    /// `Ready`: waiting for `ContinueDeployment` to reroute production traffic.
    Ready,
    /// `InProgress`: production traffic was rerouted (a successful `ContinueDeployment`) and the
    /// original task set's termination wait started (`instanceTerminationWaitTimeStarted`).
    Shifting,
    Succeeded,
    /// A failed hook (or anything else) failed it; CodeDeploy rolls back.
    Failed,
    /// `StopDeployment` stopped it.
    Stopped,
}

impl Phase {
    /// The status `GetDeployment` names.
    pub fn status(self) -> &'static str {
        match self {
            Phase::Created => "Created",
            Phase::InProgress | Phase::AtHook | Phase::HookPassed | Phase::Shifting => "InProgress",
            Phase::Ready => "Ready",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Stopped => "Stopped",
        }
    }

    pub fn ended(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed | Phase::Stopped)
    }
}

#[derive(Debug, Default)]
struct Deployment {
    phase: Option<Phase>,
    /// Each hook execution CodeDeploy invoked, and the status it was answered with.
    hooks: HashMap<String, Option<String>>,
}

#[derive(Debug, Default)]
struct ServiceDeployment {
    hook_id: String,
    /// `AWAITING_ACTION` until continued, then the action taken; empty: no pause hook reached.
    hook_status: String,
    /// Known from an `UpdateService` the stand-in saw (a native service): the service, the
    /// revision and its task definition, ECS's status, stage and reason, the service's
    /// deployment configuration, the production traffic weight.
    service: String,
    revision: String,
    task_definition: String,
    status: String,
    stage: String,
    reason: String,
    configuration: Value,
    production_weight: f64,
}

/// What the stand-in knows of AWS's state.
#[derive(Debug, Default)]
struct Aws {
    deployments: HashMap<String, Deployment>,
    service_deployments: HashMap<String, ServiceDeployment>,
    /// ECS native blue/green services (by name): the `deploymentConfiguration` moto drops.
    native_services: HashMap<String, Value>,
    /// Service deployment ARNs in the order `UpdateService` started them.
    started: Vec<String>,
}

/// The stand-in's answer: the HTTP status and the JSON body.
type Reply = (u16, Value);

fn refuse(code: &str, message: String) -> Reply {
    (400, json!({"__type": code, "message": message}))
}

impl Aws {
    fn deployment(&mut self, id: &str) -> Result<&mut Deployment, Reply> {
        self.deployments.get_mut(id).ok_or_else(|| {
            refuse("DeploymentDoesNotExistException", format!("The deployment {id} could not be found."))
        })
    }

    /// CodeDeploy's answer to `operation`, and how its state changes; `None`: not CodeDeploy's
    /// or ECS's deployment API.
    fn handle(&mut self, operation: &str, body: &Value) -> Option<Reply> {
        let text = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
        Some(match operation {
            "PutLifecycleEventHookExecutionStatus" => {
                let (id, execution, status) =
                    (text("deploymentId"), text("lifecycleEventHookExecutionId"), text("status"));
                self.answer_hook(&id, &execution, &status).unwrap_or_else(|refused| refused)
            }
            "ContinueDeployment" => self.continue_deployment(&text("deploymentId")).unwrap_or_else(|r| r),
            "StopDeployment" => self.stop_deployment(&text("deploymentId")).unwrap_or_else(|r| r),
            "DescribeServiceDeployments" => self.describe_service_deployments(body),
            "ListServiceDeployments" => self.list_service_deployments(body),
            "DescribeServiceRevisions" => self.describe_service_revisions(body),
            "StopServiceDeployment" => {
                self.stop_service_deployment(&text("serviceDeploymentArn")).unwrap_or_else(|r| r)
            }
            "ContinueServiceDeployment" => self
                .continue_service_deployment(&text("serviceDeploymentArn"), &text("hookId"), &text("action"))
                .unwrap_or_else(|r| r),
            _ => return None,
        })
    }

    /// Learns a deployment from moto's answer to its creation; says a known deployment's status
    /// in moto's `GetDeployment` answer as CodeDeploy would (moto's stays "Created"). `None`:
    /// moto's answer goes through as it is.
    fn overlay(&mut self, operation: &str, mut answer: Value) -> Option<Value> {
        if operation == "CreateDeployment" {
            let id = answer["deploymentId"].as_str()?;
            self.deployments.entry(id.to_owned()).or_default().phase.get_or_insert(Phase::Created);
            return None;
        }
        let id = answer["deploymentInfo"]["deploymentId"].as_str()?;
        let phase = self.deployments.get(id)?.phase?;
        answer["deploymentInfo"]["status"] = json!(phase.status());
        // What CodeDeploy says of a group with a termination wait once traffic was rerouted.
        if phase == Phase::Shifting {
            answer["deploymentInfo"]["instanceTerminationWaitTimeStarted"] = json!(true);
        }
        Some(answer)
    }

    fn answer_hook(&mut self, id: &str, execution: &str, status: &str) -> Result<Reply, Reply> {
        let deployment = self.deployment(id)?;
        let answered = deployment.hooks.get_mut(execution).ok_or_else(|| {
            refuse(
                "InvalidLifecycleEventHookExecutionIdException",
                format!("The lifecycle event hook execution {execution} is not one of deployment {id}."),
            )
        })?;
        if answered.is_some() {
            return Err(refuse(
                "LifecycleEventAlreadyCompletedException",
                format!("The lifecycle event hook execution {execution} has already completed."),
            ));
        }
        *answered = Some(status.to_owned());
        // A hook of a deployment that already ended is a rollback's re-run: its answer is taken
        // and changes nothing.
        if deployment.phase == Some(Phase::AtHook) {
            deployment.phase = Some(if status == "Succeeded" { Phase::HookPassed } else { Phase::Failed });
        }
        Ok((200, json!({"lifecycleEventHookExecutionId": execution})))
    }

    fn continue_deployment(&mut self, id: &str) -> Result<Reply, Reply> {
        let deployment = self.deployment(id)?;
        match deployment.phase {
            Some(Phase::Ready) => {
                deployment.phase = Some(Phase::Shifting);
                Ok((200, json!({})))
            }
            Some(phase) if phase.ended() => Err(refuse(
                "DeploymentAlreadyCompletedException",
                format!("The deployment {id} has already completed ({}).", phase.status()),
            )),
            phase => Err(refuse(
                "DeploymentIsNotInReadyStateException",
                format!(
                    "The deployment {id} is not in the Ready state (it is {}).",
                    phase.map_or("unknown", Phase::status)
                ),
            )),
        }
    }

    fn stop_deployment(&mut self, id: &str) -> Result<Reply, Reply> {
        let deployment = self.deployment(id)?;
        if let Some(phase) = deployment.phase.filter(|p| p.ended()) {
            return Err(refuse(
                "DeploymentAlreadyCompletedException",
                format!("The deployment {id} has already completed ({}).", phase.status()),
            ));
        }
        deployment.phase = Some(Phase::Stopped);
        Ok((200, json!({"status": "Pending", "statusMessage": "Stopping the deployment"})))
    }

    fn describe_service_deployments(&self, body: &Value) -> Reply {
        let arns: Vec<&str> =
            body["serviceDeploymentArns"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let (mut found, mut failures) = (Vec::new(), Vec::new());
        for arn in arns {
            match self.service_deployments.get(arn) {
                Some(known) => {
                    let hooks = if known.hook_status.is_empty() {
                        json!([])
                    } else {
                        json!([{"hookId": known.hook_id, "targetType": "PAUSE", "status": known.hook_status}])
                    };
                    let mut described = json!({"serviceDeploymentArn": arn,
                        "status": if known.status.is_empty() { "IN_PROGRESS" } else { known.status.as_str() },
                        "lifecycleHookDetails": hooks});
                    if !known.service.is_empty() {
                        described["statusReason"] = json!(known.reason);
                        described["lifecycleStage"] = json!(known.stage);
                        described["deploymentConfiguration"] = known.configuration.clone();
                        described["targetServiceRevision"] = json!({"arn": known.revision,
                            "requestedProductionTrafficWeight": known.production_weight});
                        if known.status.starts_with("ROLLBACK") {
                            described["rollback"] = json!({"reason": known.reason});
                        }
                    }
                    found.push(described);
                }
                None => failures.push(json!({"arn": arn, "reason": "MISSING"})),
            }
        }
        (200, json!({"serviceDeployments": found, "failures": failures}))
    }

    /// `ListServiceDeployments` of a native service, newest first (what ECS lists).
    fn list_service_deployments(&self, body: &Value) -> Reply {
        let service = body["service"].as_str().unwrap_or_default().rsplit('/').next().unwrap_or_default();
        let briefs: Vec<Value> = self
            .started
            .iter()
            .rev()
            .filter_map(|arn| Some((arn, self.service_deployments.get(arn)?)))
            .filter(|(_, known)| known.service == service)
            .map(|(arn, known)| {
                json!({"serviceDeploymentArn": arn, "targetServiceRevisionArn": known.revision,
                       "status": if known.status.is_empty() { "IN_PROGRESS" } else { known.status.as_str() }})
            })
            .collect();
        (200, json!({"serviceDeployments": briefs}))
    }

    fn describe_service_revisions(&self, body: &Value) -> Reply {
        let arns: Vec<&str> =
            body["serviceRevisionArns"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let (mut found, mut failures) = (Vec::new(), Vec::new());
        for arn in arns {
            match self.service_deployments.values().find(|d| d.revision == arn) {
                Some(known) => found.push(json!({"serviceRevisionArn": arn, "taskDefinition": known.task_definition})),
                None => failures.push(json!({"arn": arn, "reason": "MISSING"})),
            }
        }
        (200, json!({"serviceRevisions": found, "failures": failures}))
    }

    /// `StopServiceDeployment` (ROLLBACK, its default): ECS rolls the deployment back.
    fn stop_service_deployment(&mut self, arn: &str) -> Result<Reply, Reply> {
        let known = self.service_deployments.get_mut(arn).ok_or_else(|| {
            refuse("ServiceDeploymentNotFoundException", format!("The service deployment {arn} does not exist."))
        })?;
        if matches!(known.status.as_str(), "SUCCESSFUL" | "STOPPED" | "ROLLBACK_SUCCESSFUL" | "ROLLBACK_FAILED") {
            return Err(refuse(
                "ConflictException",
                format!("The service deployment {arn} has already completed ({}).", known.status),
            ));
        }
        known.status = "ROLLBACK_REQUESTED".into();
        Ok((200, json!({"serviceDeploymentArn": arn})))
    }

    /// moto's `UpdateService`/`DescribeServices` answer, with what moto drops for a native
    /// service: its `deploymentConfiguration` and, after an update, `currentServiceDeployment`
    /// (a service deployment the stand-in now keeps). `None`: moto's answer goes through as it is.
    fn overlay_ecs(&mut self, operation: &str, request: &Value, mut answer: Value) -> Option<Value> {
        match operation {
            "UpdateService" => {
                let service = answer["service"]["serviceName"].as_str()?.to_owned();
                let configuration = self.native_services.get(&service)?.clone();
                let cluster = answer["service"]["clusterArn"].as_str()?.rsplit('/').next()?.to_owned();
                let prefix = answer["service"]["serviceArn"].as_str()?.split(":service/").next()?.to_owned();
                let n = self.started.len() + 1;
                let arn = format!("{prefix}:service-deployment/{cluster}/{service}/sd{n:04}");
                let known = ServiceDeployment {
                    service: service.clone(),
                    revision: format!("{prefix}:service-revision/{cluster}/{service}/{n:019}"),
                    task_definition: request["taskDefinition"].as_str().unwrap_or_default().to_owned(),
                    status: "IN_PROGRESS".into(),
                    stage: "SCALE_UP".into(),
                    configuration: configuration.clone(),
                    hook_id: "hook-pause-1".into(),
                    ..ServiceDeployment::default()
                };
                self.service_deployments.insert(arn.clone(), known);
                self.started.push(arn.clone());
                answer["service"]["currentServiceDeployment"] = json!(arn);
                answer["service"]["deploymentConfiguration"] = configuration;
                Some(answer)
            }
            "DescribeServices" => {
                let mut changed = false;
                for service in answer["services"].as_array_mut()? {
                    let name = service["serviceName"].as_str().unwrap_or_default().to_owned();
                    if let Some(configuration) = self.native_services.get(&name) {
                        service["deploymentConfiguration"] = configuration.clone();
                        changed = true;
                    }
                }
                changed.then_some(answer)
            }
            _ => None,
        }
    }

    fn continue_service_deployment(&mut self, arn: &str, hook_id: &str, action: &str) -> Result<Reply, Reply> {
        let known = self.service_deployments.get_mut(arn).ok_or_else(|| {
            refuse("ServiceDeploymentNotFoundException", format!("The service deployment {arn} does not exist."))
        })?;
        if known.hook_id != hook_id || known.hook_status != "AWAITING_ACTION" {
            return Err(refuse(
                "InvalidParameterException",
                format!("The lifecycle hook {hook_id} of service deployment {arn} is not awaiting action."),
            ));
        }
        known.hook_status = if action == "ROLLBACK" { "FAILED" } else { "SUCCEEDED" }.to_owned();
        if !known.service.is_empty() {
            if action == "ROLLBACK" {
                known.status = "ROLLBACK_IN_PROGRESS".into();
            } else {
                known.stage = "PRODUCTION_TRAFFIC_SHIFT".into();
            }
        }
        Ok((200, json!({"serviceDeploymentArn": arn})))
    }
}

pub struct StandIn {
    pub endpoint: String,
    answers: Arc<Mutex<Vec<(String, Value)>>>,
    calls: Arc<Mutex<Vec<Call>>>,
    forwarded: Arc<Mutex<Vec<String>>>,
    log: Arc<Mutex<Vec<Request>>>,
    aws: Arc<Mutex<Aws>>,
    trail: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What one connection's handler shares with the stand-in.
#[derive(Clone)]
struct Shared {
    upstream: String,
    recorded: Arc<Mutex<Vec<Call>>>,
    answers: Arc<Mutex<Vec<(String, Value)>>>,
    passed: Arc<Mutex<Vec<String>>>,
    log: Arc<Mutex<Vec<Request>>>,
    aws: Arc<Mutex<Aws>>,
    /// CloudTrail records of the decision calls, oldest first.
    trail: Arc<Mutex<Vec<Value>>>,
}

impl StandIn {
    /// The stand-in for every operation moto lacks that Convoy calls, answering as AWS does.
    pub async fn for_missing_operations(upstream: &str) -> StandIn {
        // No action of the execution has reported anything yet.
        let answers = vec![("ListActionExecutions".into(), json!({"actionExecutionDetails": []}))];
        Self::start(upstream, answers).await
    }

    /// Starts the proxy in front of `upstream`: CodeDeploy's and ECS's deployment calls answered
    /// from the deployments' state, each `(target, response JSON)` answered as given.
    pub async fn start(upstream: &str, answers: Vec<(String, Value)>) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let shared = Shared {
            upstream: upstream.trim_start_matches("http://").to_owned(),
            recorded: Arc::default(),
            answers: Arc::new(Mutex::new(answers)),
            passed: Arc::default(),
            log: Arc::default(),
            aws: Arc::default(),
            trail: Arc::default(),
        };
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let shared = serving.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, &shared).await;
                });
            }
        });
        StandIn {
            endpoint,
            answers: shared.answers,
            calls: shared.recorded,
            forwarded: shared.passed,
            log: shared.log,
            aws: shared.aws,
            trail: shared.trail,
            task,
        }
    }

    /// Answers `operation` with `answer` from now on (what AWS would say at this point).
    pub fn answer(&self, operation: &str, answer: Value) {
        let mut answers = self.answers.lock().expect("answers");
        answers.retain(|(known, _)| known != operation);
        answers.push((operation.to_owned(), answer));
    }

    /// Answers `ListActionExecutions` as CodePipeline does once the deploy action of
    /// `execution` reported the CodeDeploy `deployment` it created.
    pub fn report_deploy_action(&self, execution: &str, deployment: &str) {
        let detail = json!({"pipelineExecutionId": execution, "actionName": "BlueGreen",
            "status": "InProgress",
            "input": {"actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "CodeDeployToECS",
                                       "version": "1"}},
            "output": {"executionResult": {"externalExecutionId": deployment}}});
        self.answer("ListActionExecutions", json!({"actionExecutionDetails": [detail]}));
    }

    /// A deployment CodeDeploy created without the stand-in seeing it (the harness created it
    /// straight on moto): known from now on, `Created`.
    pub fn register(&self, deployment: &str) {
        let mut aws = self.aws.lock().expect("aws");
        let known = aws.deployments.entry(deployment.to_owned()).or_default();
        known.phase.get_or_insert(Phase::Created);
    }

    /// CodeDeploy invokes the `AfterAllowTestTraffic` hook of `deployment` as `execution`: the
    /// deployment waits for that answer. On a deployment that ended (rolled back), it is a
    /// rollback's re-run of the hook, which changes nothing but takes one answer.
    pub fn hook_invoked(&self, deployment: &str, execution: &str) {
        let mut aws = self.aws.lock().expect("aws");
        let known = aws
            .deployments
            .get_mut(deployment)
            .unwrap_or_else(|| panic!("CodeDeploy invokes hooks only for its own deployments, not {deployment}"));
        known.hooks.entry(execution.to_owned()).or_insert(None);
        if !known.phase.is_some_and(Phase::ended) {
            known.phase = Some(Phase::AtHook);
        }
    }

    /// CodeDeploy reaches READY_WAIT: the hook passed, and the deployment now waits for
    /// `ContinueDeployment`.
    pub fn waits(&self, deployment: &str) {
        self.step(deployment, Phase::HookPassed, Phase::Ready);
    }

    /// CodeDeploy reroutes production traffic by itself, with no call anyone made (the group's
    /// READY_WAIT timed out with `CONTINUE_DEPLOYMENT`): as after a continue, and CloudTrail
    /// records nothing.
    pub fn reroutes_by_itself(&self, deployment: &str) {
        self.step(deployment, Phase::Ready, Phase::Shifting);
    }

    /// CodeDeploy finishes shifting production traffic (after a continue): `Succeeded`.
    pub fn finish(&self, deployment: &str) {
        self.step(deployment, Phase::Shifting, Phase::Succeeded);
    }

    /// The deployment ends `phase` without Convoy's doing (someone continued or stopped it in
    /// the console, or its READY_WAIT timed out).
    pub fn ended_elsewhere(&self, deployment: &str, phase: Phase) {
        assert!(phase.ended(), "{phase:?} is not an end");
        let mut aws = self.aws.lock().expect("aws");
        let known = aws.deployments.get_mut(deployment).unwrap_or_else(|| panic!("no deployment {deployment}"));
        known.phase = Some(phase);
    }

    fn step(&self, deployment: &str, from: Phase, to: Phase) {
        let mut aws = self.aws.lock().expect("aws");
        let known = aws.deployments.get_mut(deployment).unwrap_or_else(|| panic!("no deployment {deployment}"));
        assert_eq!(known.phase, Some(from), "CodeDeploy moves {deployment} to {to:?} only from {from:?}");
        known.phase = Some(to);
    }

    /// Where CodeDeploy has `deployment` now (`None`: CodeDeploy does not know it).
    pub fn phase(&self, deployment: &str) -> Option<Phase> {
        self.aws.lock().expect("aws").deployments.get(deployment).and_then(|d| d.phase)
    }

    /// ECS pauses `service_deployment` at a PAUSE lifecycle hook (`hook-pause-1`), awaiting
    /// `ContinueServiceDeployment`.
    pub fn pause_service_deployment(&self, service_deployment: &str) {
        let mut aws = self.aws.lock().expect("aws");
        let known = aws.service_deployments.entry(service_deployment.to_owned()).or_default();
        known.hook_id = "hook-pause-1".into();
        known.hook_status = "AWAITING_ACTION".into();
        if !known.service.is_empty() {
            known.stage = "PRE_PRODUCTION_TRAFFIC_SHIFT".into();
        }
    }

    /// `service` deploys natively (ECS controller) with `configuration` as its
    /// `deploymentConfiguration` (strategy, lifecycle hooks, bake time), which moto 5.2.5 drops:
    /// `DescribeServices` says it, and each `UpdateService` starts a service deployment.
    pub fn native_service(&self, service: &str, configuration: Value) {
        self.aws.lock().expect("aws").native_services.insert(service.to_owned(), configuration);
    }

    /// The service deployments `UpdateService` started, oldest first.
    pub fn service_deployments(&self) -> Vec<String> {
        self.aws.lock().expect("aws").started.clone()
    }

    /// ECS reaches `stage` of `service_deployment`, asking for `weight`% of production traffic.
    pub fn service_deployment_at(&self, service_deployment: &str, stage: &str, weight: f64) {
        let mut aws = self.aws.lock().expect("aws");
        let known = aws.service_deployments.get_mut(service_deployment).expect("a known service deployment");
        known.stage = stage.to_owned();
        known.production_weight = weight;
    }

    /// ECS ends `service_deployment` with `status` (SUCCESSFUL, ROLLBACK_SUCCESSFUL, ...) and
    /// `reason`.
    pub fn service_deployment_ends(&self, service_deployment: &str, status: &str, reason: &str) {
        let mut aws = self.aws.lock().expect("aws");
        let known = aws.service_deployments.get_mut(service_deployment).expect("a known service deployment");
        known.status = status.to_owned();
        known.reason = reason.to_owned();
        if status == "SUCCESSFUL" {
            known.production_weight = 100.0;
            known.stage = "CLEAN_UP".into();
        }
    }

    /// Every intercepted request, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls").clone()
    }

    /// Every request that went on to moto, as "METHOD /path" or the JSON operation, in order.
    pub fn forwarded(&self) -> Vec<String> {
        self.forwarded.lock().expect("forwarded").clone()
    }

    /// Every AWS request the stand-in saw (forwarded or answered), in order, with its time,
    /// service and operation (the bench's per-release account and hand-off latencies).
    pub fn log(&self) -> Vec<Request> {
        self.log.lock().expect("log").clone()
    }

    /// Every AWS request the stand-in saw (forwarded or answered), so far.
    pub fn requests(&self) -> usize {
        self.forwarded.lock().expect("forwarded").len() + self.calls.lock().expect("calls").len()
    }

    /// The intercepted requests of one operation (`ContinueDeployment`, ...), refused or not.
    pub fn calls_to(&self, operation: &str) -> Vec<Value> {
        self.calls_of(operation).into_iter().map(|c| c.body).collect()
    }

    /// The intercepted calls of one operation, with how each was answered.
    pub fn calls_of(&self, operation: &str) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.target.ends_with(&format!(".{operation}"))).collect()
    }

    /// The CloudTrail records of the decision calls so far (refused ones carry `errorCode`).
    pub fn trail(&self) -> Vec<Value> {
        self.trail.lock().expect("trail").clone()
    }

    /// The EventBridge "AWS API Call via CloudTrail" event AWS delivers for `record` (one of
    /// [`StandIn::trail`]): the envelope of the EventBridge User Guide around the record.
    pub fn api_call_event(record: &Value) -> Value {
        let source = record["eventSource"].as_str().unwrap_or_default().trim_end_matches(".amazonaws.com");
        json!({
            "version": "0",
            "id": fresh_id(),
            "detail-type": "AWS API Call via CloudTrail",
            "source": format!("aws.{source}"),
            "account": record["recipientAccountId"],
            "time": record["eventTime"],
            "region": record["awsRegion"],
            "resources": [],
            "detail": record,
        })
    }

    /// The error codes the stand-in refused `operation` with, in order.
    pub fn refusals_of(&self, operation: &str) -> Vec<String> {
        self.calls_of(operation).into_iter().filter_map(|c| c.refused).collect()
    }
}

/// `Some(operation)` when `target` is `<Service>.<operation>`.
fn operation_of(target: &str) -> &str {
    target.rsplit_once('.').map_or(target, |(_, operation)| operation)
}

async fn serve(mut client: TcpStream, shared: &Shared) -> std::io::Result<()> {
    // One request per connection: read the head, then the body by its length.
    let mut request = Vec::new();
    let mut buffer = [0u8; 8192];
    let head_end = loop {
        let n = client.read(&mut buffer).await?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buffer[..n]);
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
    let length: usize = header(&head, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while request.len() < head_end + length {
        let n = client.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buffer[..n]);
    }
    if header(&head, "smithy-protocol").is_some_and(|p| p == "rpc-v2-cbor") {
        return bridge_cbor(client, shared, &head, &request[head_end..]).await;
    }
    let target = header(&head, "x-amz-target").unwrap_or_default();
    let operation = operation_of(&target).to_owned();
    let body: Value = serde_json::from_slice(&request[head_end..]).unwrap_or(Value::Null);
    shared.log.lock().expect("log").push(Request {
        at: std::time::Instant::now(),
        service: signing_service(&head),
        operation: if target.is_empty() { rest_operation(&head, &request[head_end..]) } else { operation.clone() },
    });
    if operation == "LookupEvents" && target.contains("CloudTrail_20131101") {
        let (status, answer) = lookup_events(&shared.trail.lock().expect("trail"), &body);
        let refused = (status != 200).then(|| answer["__type"].as_str().unwrap_or_default().to_owned());
        shared.recorded.lock().expect("calls").push(Call { target: target.clone(), body, refused });
        return respond(&mut client, status, &answer.to_string()).await;
    }
    let stateful = if target.is_empty() { None } else { shared.aws.lock().expect("aws").handle(&operation, &body) };
    if let Some((status, answer)) = &stateful
        && DECISIONS.contains(&operation.as_str())
    {
        let source_ip = client.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
        let record =
            trail_record(shared, &head, &operation, &body, &source_ip, (*status != 200).then_some(answer)).await;
        shared.trail.lock().expect("trail").push(record);
    }
    let given = || {
        let answers = shared.answers.lock().expect("answers");
        answers.iter().find(|(known, _)| *known == operation).map(|(_, answer)| (200, answer.clone()))
    };
    if let Some((status, answer)) = stateful.or_else(given) {
        let refused = (status != 200).then(|| answer["__type"].as_str().unwrap_or_default().to_owned());
        shared.recorded.lock().expect("calls").push(Call { target: target.clone(), body, refused });
        return respond(&mut client, status, &answer.to_string()).await;
    }
    let request_line = head.lines().next().unwrap_or_default();
    let described = if target.is_empty() {
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        format!("{method} {}", path.split('?').next().unwrap_or_default())
    } else {
        target.clone()
    };
    shared.passed.lock().expect("forwarded").push(described);
    // Forward untouched, but ask moto to close, so the response ends at EOF.
    let mut forwarded = String::new();
    for line in head[..head_end - 4].lines() {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            forwarded.push_str(line);
            forwarded.push_str("\r\n");
        }
    }
    forwarded.push_str("Connection: close\r\n\r\n");
    let mut moto = TcpStream::connect(&shared.upstream).await?;
    moto.write_all(forwarded.as_bytes()).await?;
    moto.write_all(&request[head_end..]).await?;
    let mut response = Vec::new();
    moto.read_to_end(&mut response).await?;
    // CodeDeploy's own record of a deployment: learn it from moto's answer to its creation, and
    // say its status as CodeDeploy would (moto's stays "Created").
    if (operation == "CreateDeployment" || operation == "GetDeployment")
        && let Some((status, answer)) = json_response(&response).filter(|(status, _)| *status == 200)
    {
        let overlaid = shared.aws.lock().expect("aws").overlay(&operation, answer);
        if let Some(answer) = overlaid {
            return respond(&mut client, status, &answer.to_string()).await;
        }
    }
    // ECS native blue/green: what moto drops (the deployment configuration, the service
    // deployment an update starts).
    if (operation == "UpdateService" || operation == "DescribeServices")
        && let Some((status, answer)) = json_response(&response).filter(|(status, _)| *status == 200)
    {
        let overlaid = shared.aws.lock().expect("aws").overlay_ecs(&operation, &body, answer);
        if let Some(answer) = overlaid {
            return respond(&mut client, status, &answer.to_string()).await;
        }
    }
    client.write_all(&response).await?;
    client.shutdown().await
}

/// A Smithy RPC v2 CBOR request (CloudWatch's protocol in the SDK, which moto does not read):
/// sent on to moto as the same AWS JSON 1.0 operation, and moto's answer returned as CBOR. Only
/// the encoding changes; moto answers (see [`crate::cbor`]).
async fn bridge_cbor(mut client: TcpStream, shared: &Shared, head: &str, body: &[u8]) -> std::io::Result<()> {
    let path = head.lines().next().and_then(|l| l.split_whitespace().nth(1)).unwrap_or_default().to_owned();
    // /service/<Service>/operation/<Operation>
    let mut parts = path.trim_start_matches('/').split('/');
    let (service, operation) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("service"), Some(service), Some("operation"), Some(operation)) => (service, operation),
        _ => {
            return respond(&mut client, 400, &json!({"__type": "UnknownOperation", "message": path}).to_string())
                .await;
        }
    };
    let target = format!("{service}.{operation}");
    shared.passed.lock().expect("forwarded").push(target.clone());
    let document = crate::cbor::to_json(body).unwrap_or(Value::Null).to_string();
    let authorization = header(head, "authorization").unwrap_or_default();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-amz-json-1.0\r\nX-Amz-Target: {target}\r\n\
         Authorization: {authorization}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{document}",
        shared.upstream,
        document.len()
    );
    let mut moto = TcpStream::connect(&shared.upstream).await?;
    moto.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    moto.read_to_end(&mut response).await?;
    let (status, answer) = json_response(&response).unwrap_or((500, json!({"__type": "InternalFailure"})));
    let bytes = crate::cbor::from_json(&answer);
    let reason = if status == 200 { "OK" } else { "Bad Request" };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/cbor\r\nsmithy-protocol: rpc-v2-cbor\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        bytes.len()
    );
    client.write_all(head.as_bytes()).await?;
    client.write_all(&bytes).await?;
    client.shutdown().await
}

/// The service a request was signed for: the SigV4 credential scope's fourth part.
fn signing_service(head: &str) -> String {
    header(head, "authorization")
        .and_then(|auth| {
            let scope = auth.split("Credential=").nth(1)?.split([',', ' ']).next()?.to_owned();
            scope.split('/').nth(3).map(str::to_owned)
        })
        .unwrap_or_else(|| "unsigned".into())
}

/// A request without `X-Amz-Target`: a query-protocol `Action`, or an S3 REST operation named
/// from its method, path (path-style: `/bucket[/key]`) and query.
fn rest_operation(head: &str, body: &[u8]) -> String {
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let form = String::from_utf8_lossy(body);
    if let Some(action) = form.split('&').chain(query.split('&')).find_map(|p| p.strip_prefix("Action=")) {
        return action.to_owned();
    }
    let has = |name: &str| query.split('&').any(|p| p == name || p.starts_with(&format!("{name}=")));
    let object = path.trim_start_matches('/').contains('/');
    match (method, object) {
        ("GET", true) => "GetObject",
        ("HEAD", true) => "HeadObject",
        ("PUT", true) if header(head, "x-amz-copy-source").is_some() => "CopyObject",
        ("PUT", true) => "PutObject",
        ("DELETE", true) => "DeleteObject",
        ("GET", false) if has("list-type") => "ListObjectsV2",
        ("GET", false) if has("versions") => "ListObjectVersions",
        ("GET", false) => "ListObjects",
        ("POST", false) if has("delete") => "DeleteObjects",
        ("HEAD", false) => "HeadBucket",
        _ => return format!("{method} {path}"),
    }
    .to_owned()
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_owned())
    })
}

/// The status and JSON body of a whole HTTP/1.1 response (plain or chunked).
fn json_response(response: &[u8]) -> Option<(u16, Value)> {
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&response[..head_end]).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut body = response[head_end..].to_vec();
    if header(&head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let (mut plain, mut rest) = (Vec::new(), body.as_slice());
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..line_end]).trim(), 16).ok()?;
            if size == 0 {
                break;
            }
            plain.extend_from_slice(rest.get(line_end + 2..line_end + 2 + size)?);
            rest = rest.get(line_end + 4 + size..)?;
        }
        body = plain;
    }
    Some((status, serde_json::from_slice(&body).ok()?))
}

async fn respond(client: &mut TcpStream, status: u16, text: &str) -> std::io::Result<()> {
    let reason = if status == 200 { "OK" } else { "Bad Request" };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    client.write_all(response.as_bytes()).await?;
    client.shutdown().await
}

/// The operations whose calls decide a traffic shift: CloudTrail records each.
const DECISIONS: [&str; 4] =
    ["ContinueDeployment", "StopDeployment", "ContinueServiceDeployment", "StopServiceDeployment"];

fn fresh_id() -> String {
    let hex = |n: usize| (0..n).map(|_| format!("{:x}", fastrand::u8(..16))).collect::<String>();
    format!("{}-{}-{}-{}-{}", hex(8), hex(4), hex(4), hex(4), hex(12))
}

/// The access key id that signed a request (SigV4 `Credential=AKID/...`).
fn access_key_of(head: &str) -> String {
    header(head, "authorization")
        .and_then(|auth| auth.split("Credential=").nth(1)?.split('/').next().map(str::to_owned))
        .unwrap_or_default()
}

/// Who AWS says owns `access_key`: moto's STS `GetCallerIdentity` for that key (an IAM user's
/// key resolves to the user, an assumed role's to its session): `(arn, user id, account)`.
async fn caller_identity(upstream: &str, access_key: &str) -> (String, String, String) {
    let form = "Action=GetCallerIdentity&Version=2011-06-15";
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {upstream}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={access_key}/20260101/us-east-1/sts/aws4_request, \
         SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    );
    let mut answer = Vec::new();
    if let Ok(mut moto) = TcpStream::connect(upstream).await
        && moto.write_all(request.as_bytes()).await.is_ok()
    {
        let _ = moto.read_to_end(&mut answer).await;
    }
    let text = String::from_utf8_lossy(&answer);
    let element = |name: &str| {
        text.split(&format!("<{name}>"))
            .nth(1)
            .and_then(|rest| rest.split(&format!("</{name}>")).next())
            .unwrap_or_default()
            .to_owned()
    };
    (element("Arn"), element("UserId"), element("Account"))
}

/// A CloudTrail record of a decision call, as CloudTrail writes it ("CloudTrail record contents"):
/// the caller from AWS, the request's parameters, and the refusal's code and message if any.
async fn trail_record(
    shared: &Shared,
    head: &str,
    operation: &str,
    body: &Value,
    source_ip: &str,
    refusal: Option<&Value>,
) -> Value {
    let access_key = access_key_of(head);
    let (arn, user_id, account) = caller_identity(&shared.upstream, &access_key).await;
    let service = signing_service(head);
    let region = header(head, "authorization")
        .and_then(|auth| auth.split("Credential=").nth(1)?.split('/').nth(2).map(str::to_owned))
        .unwrap_or_default();
    let mut identity = json!({"principalId": user_id, "arn": arn, "accountId": account, "accessKeyId": access_key});
    if let Some((_, resource)) = arn.split_once(":assumed-role/") {
        let role = resource.split('/').next().unwrap_or_default();
        identity["type"] = json!("AssumedRole");
        identity["sessionContext"] = json!({
            "sessionIssuer": {"type": "Role", "principalId": user_id.split(':').next().unwrap_or_default(),
                "arn": format!("arn:aws:iam::{account}:role/{role}"), "accountId": account, "userName": role},
            "attributes": {"creationDate": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "mfaAuthenticated": "false"}
        });
    } else {
        identity["type"] = json!("IAMUser");
        identity["userName"] = json!(arn.rsplit('/').next().unwrap_or_default());
    }
    let mut record = json!({
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "eventSource": format!("{service}.amazonaws.com"),
        "eventName": operation,
        "awsRegion": region,
        "sourceIPAddress": source_ip,
        "userAgent": header(head, "user-agent").unwrap_or_default(),
        "requestParameters": body,
        "responseElements": null,
        "requestID": fresh_id(),
        "eventID": fresh_id(),
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": account,
        "eventCategory": "Management",
    });
    if let Some(refusal) = refusal {
        record["errorCode"] = refusal["__type"].clone();
        record["errorMessage"] = refusal["message"].clone();
    }
    record
}

/// CloudTrail `LookupEvents` over the recorded decision calls: one `EventName` attribute (the
/// only kind Convoy sends; others are refused as CloudTrail refuses more than one), within
/// `StartTime`/`EndTime` (epoch seconds), newest first, `MaxResults` per page (default 50), the
/// next page's index as `NextToken`.
fn lookup_events(trail: &[Value], body: &Value) -> Reply {
    let attributes = body["LookupAttributes"].as_array().cloned().unwrap_or_default();
    if attributes.len() > 1 {
        return refuse("InvalidLookupAttributesException", "You cannot specify more than one lookup attribute.".into());
    }
    let name = attributes.first().filter(|a| a["AttributeKey"] == "EventName").map(|a| a["AttributeValue"].clone());
    let time = |record: &Value| {
        record["eventTime"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map_or(0, |t| t.timestamp())
    };
    let start = body["StartTime"].as_f64().map_or(i64::MIN, |t| t as i64);
    let end = body["EndTime"].as_f64().map_or(i64::MAX, |t| t as i64);
    let mut matching: Vec<&Value> = trail
        .iter()
        .filter(|r| name.as_ref().is_none_or(|n| r["eventName"] == *n))
        .filter(|r| (start..=end).contains(&time(r)))
        .collect();
    matching.reverse();
    let size = body["MaxResults"].as_u64().unwrap_or(50).clamp(1, 50) as usize;
    let from: usize = body["NextToken"].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
    let page: Vec<Value> = matching
        .iter()
        .skip(from)
        .take(size)
        .map(|r| {
            json!({
                "EventId": r["eventID"], "EventName": r["eventName"], "ReadOnly": "false",
                "AccessKeyId": r["userIdentity"]["accessKeyId"], "EventTime": time(r),
                "EventSource": r["eventSource"], "Username": r["userIdentity"]["userName"],
                "Resources": [], "CloudTrailEvent": r.to_string(),
            })
        })
        .collect();
    let mut answer = json!({"Events": page});
    if from + size < matching.len() {
        answer["NextToken"] = json!((from + size).to_string());
    }
    (200, answer)
}
