//! ECS native blue/green, where moto 5.2.5 stops: it updates a service (`UpdateService`,
//! forwarded) but keeps no `deploymentConfiguration` (strategy, lifecycle hooks, bake time) and no
//! service deployments. For a service a test declares native ([`StandIn::native_service`]) the
//! stand-in adds the configuration to moto's `DescribeServices` and `UpdateService` answers, and
//! learns from each `UpdateService` it forwards a service deployment (`currentServiceDeployment`
//! in the answer), which it answers `ListServiceDeployments`, `DescribeServiceRevisions`,
//! `DescribeServiceDeployments`, `ContinueServiceDeployment` and `StopServiceDeployment` for. The
//! test says when ECS pauses it ([`StandIn::pause_service_deployment`]), moves it
//! ([`StandIn::service_deployment_at`]), rolls it back ([`StandIn::service_deployment_rolls_back`])
//! or ends it ([`StandIn::service_deployment_ends`]). ECS knows only the service deployments an
//! `UpdateService` started; each pause has a hook id of its own.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{Reply, StandIn, fresh_id, refuse};

/// A service deployment an `UpdateService` of a native service started.
#[derive(Debug, Default)]
struct ServiceDeployment {
    /// The PAUSE hook ECS is at, and its status: `AWAITING_ACTION` until continued, then
    /// `SUCCEEDED` or `FAILED` (rolled back). `None`: no pause reached yet.
    pause: Option<(String, String)>,
    /// The service, the revision and its task definition, ECS's status, stage and reason, the
    /// service's deployment configuration, the production traffic weight.
    service: String,
    revision: String,
    task_definition: String,
    status: String,
    stage: String,
    reason: String,
    configuration: Value,
    production_weight: f64,
    /// The task definition the service ran before this deployment (a rollback returns to it), and
    /// the cluster, for the update ECS's rollback makes.
    source_task_definition: String,
    cluster: String,
    /// A rolling update's monitors: the circuit breaker's failed tasks once it triggered, and the
    /// alarms that went into ALARM.
    breaker_failures: Option<u32>,
    triggered_alarms: Vec<String>,
}

/// The deployment circuit breaker's threshold for a small service: "a minimum threshold of 3"
/// (API Reference, `ServiceDeploymentCircuitBreaker`).
const BREAKER_THRESHOLD: u32 = 3;

/// Service deployment statuses from which no action is taken: "Completed" (Amazon ECS Developer
/// Guide, "View service history using Amazon ECS service deployments").
const COMPLETED: [&str; 4] = ["SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"];

/// What the stand-in knows of ECS's native services and their service deployments.
#[derive(Debug, Default)]
pub(super) struct Ecs {
    service_deployments: HashMap<String, ServiceDeployment>,
    /// ECS native blue/green services (by name): the `deploymentConfiguration` moto drops.
    native_services: HashMap<String, Value>,
    /// Service deployment ARNs in the order `UpdateService` started them.
    started: Vec<String>,
    /// The service an `UpdateService` about to be forwarded updates, and the task definition it
    /// runs before (asked of moto first: the new service deployment's source).
    pending_source: Option<(String, String)>,
    /// The `Authorization` of the last `UpdateService` (moto reads the account from it): ECS's
    /// own rollback update is sent to moto with it.
    authorization: String,
    /// Each service's PRIMARY deployment as ECS keeps it after an `UpdateService` with a task
    /// definition (moto keeps its first deployment's revision and time for ever): the revision
    /// and when the update created it, in epoch seconds ("PRIMARY: the most recent deployment of
    /// a service", API Reference, `Deployment`).
    primary: HashMap<String, (String, f64)>,
    /// Tasks whose containers exited (moto runs none): the task as ECS then describes it (a
    /// STOPPED event's `detail`, which "resembles the Task object that is returned from a
    /// DescribeTasks API operation", Amazon ECS Developer Guide, "Amazon ECS task state change
    /// events"), by task ARN.
    stopped_tasks: HashMap<String, Value>,
}

fn not_found(arn: &str) -> Reply {
    refuse("ServiceDeploymentNotFoundException", format!("The service deployment {arn} does not exist."))
}

impl Ecs {
    /// ECS's answer to `operation`, and how its state changes; `None`: not one of ECS's service
    /// deployment operations.
    pub(super) fn handle(&mut self, operation: &str, body: &Value) -> Option<Reply> {
        let text = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
        Some(match operation {
            "DescribeServiceDeployments" => self.describe_service_deployments(body),
            "ListServiceDeployments" => self.list_service_deployments(body),
            "DescribeServiceRevisions" => self.describe_service_revisions(body),
            "StopServiceDeployment" => self
                .stop_service_deployment(&text("serviceDeploymentArn"), body["stopType"].as_str())
                .unwrap_or_else(|r| r),
            "ContinueServiceDeployment" => self
                .continue_service_deployment(&text("serviceDeploymentArn"), &text("hookId"), body["action"].as_str())
                .unwrap_or_else(|r| r),
            _ => return None,
        })
    }

    fn describe_service_deployments(&self, body: &Value) -> Reply {
        let arns: Vec<&str> =
            body["serviceDeploymentArns"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let (mut found, mut failures) = (Vec::new(), Vec::new());
        for arn in arns {
            match self.service_deployments.get(arn) {
                Some(known) => {
                    let hooks = match &known.pause {
                        Some((id, status)) => json!([{"hookId": id, "targetType": "PAUSE", "status": status}]),
                        None => json!([]),
                    };
                    let mut described = json!({"serviceDeploymentArn": arn, "status": known.status,
                        "statusReason": known.reason, "lifecycleStage": known.stage,
                        "deploymentConfiguration": known.configuration,
                        "targetServiceRevision": {"arn": known.revision,
                                                  "requestedProductionTrafficWeight": known.production_weight},
                        "lifecycleHookDetails": hooks});
                    if known.status.starts_with("ROLLBACK") {
                        described["rollback"] = json!({"reason": known.reason});
                    }
                    // A rolling update's monitors, as `ServiceDeploymentCircuitBreaker` and
                    // `ServiceDeploymentAlarms` (API Reference) describe them.
                    let done = COMPLETED.contains(&known.status.as_str());
                    let monitoring = if done { "MONITORING_COMPLETE" } else { "MONITORING" };
                    if known.configuration["deploymentCircuitBreaker"]["enable"] == json!(true) {
                        let status = if known.breaker_failures.is_some() { "TRIGGERED" } else { monitoring };
                        described["deploymentCircuitBreaker"] = json!({"status": status,
                            "failureCount": known.breaker_failures.unwrap_or(0), "threshold": BREAKER_THRESHOLD});
                    }
                    if known.configuration["alarms"]["enable"] == json!(true) {
                        let status = if known.triggered_alarms.is_empty() { monitoring } else { "TRIGGERED" };
                        described["alarms"] = json!({"status": status,
                            "alarmNames": known.configuration["alarms"]["alarmNames"],
                            "triggeredAlarmNames": known.triggered_alarms});
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
                       "status": known.status})
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

    /// `StopServiceDeployment`: a deployment still under way ("PENDING, IN_PROGRESS,
    /// STOP_REQUESTED, ROLLBACK_REQUESTED, ROLLBACK_IN_PROGRESS", Developer Guide, "Stopping Amazon
    /// ECS service deployments") moves to `ROLLBACK_REQUESTED` (`stopType` ROLLBACK, the default)
    /// or `STOP_REQUESTED` (ABORT); a completed one is refused with `ConflictException` ("conflict
    /// in the current state of the resource", API Reference).
    fn stop_service_deployment(&mut self, arn: &str, stop_type: Option<&str>) -> Result<Reply, Reply> {
        let known = self.service_deployments.get_mut(arn).ok_or_else(|| not_found(arn))?;
        if COMPLETED.contains(&known.status.as_str()) {
            return Err(refuse(
                "ConflictException",
                format!("The service deployment {arn} has already completed ({}).", known.status),
            ));
        }
        known.status = match stop_type.unwrap_or("ROLLBACK") {
            "ROLLBACK" => "ROLLBACK_REQUESTED",
            "ABORT" => "STOP_REQUESTED",
            other => {
                return Err(refuse("InvalidParameterException", format!("stopType {other} is not ROLLBACK or ABORT.")));
            }
        }
        .into();
        Ok((200, json!({"serviceDeploymentArn": arn})))
    }

    /// moto's `UpdateService`/`DescribeServices` answer, with what moto drops for a native
    /// service: its `deploymentConfiguration` and, after an update, `currentServiceDeployment`
    /// (a service deployment the stand-in now keeps). `None`: moto's answer goes through as it is.
    pub(super) fn overlay(&mut self, operation: &str, request: &Value, mut answer: Value) -> Option<Value> {
        match operation {
            "UpdateService" => {
                let service = answer["service"]["serviceName"].as_str()?.to_owned();
                let primary = self.new_primary(&service, request, &mut answer["service"]);
                let Some(configuration) = self.native_services.get(&service).cloned() else {
                    return primary.then_some(answer);
                };
                let cluster = answer["service"]["clusterArn"].as_str()?.rsplit('/').next()?.to_owned();
                let prefix = answer["service"]["serviceArn"].as_str()?.split(":service/").next()?.to_owned();
                let n = self.started.len() + 1;
                let source = self.pending_source.take().filter(|(of, _)| *of == service).map(|(_, td)| td);
                let arn = format!("{prefix}:service-deployment/{cluster}/{service}/sd{n:04}");
                let known = ServiceDeployment {
                    service: service.clone(),
                    revision: format!("{prefix}:service-revision/{cluster}/{service}/{n:019}"),
                    task_definition: request["taskDefinition"].as_str().unwrap_or_default().to_owned(),
                    status: "IN_PROGRESS".into(),
                    stage: "SCALE_UP".into(),
                    configuration: configuration.clone(),
                    source_task_definition: source.unwrap_or_default(),
                    cluster: cluster.clone(),
                    ..ServiceDeployment::default()
                };
                self.service_deployments.insert(arn.clone(), known);
                self.started.push(arn.clone());
                answer["service"]["currentServiceDeployment"] = json!(arn);
                answer["service"]["deploymentConfiguration"] = configuration;
                Some(answer)
            }
            "DescribeTasks" => {
                let mut changed = false;
                for task in answer["tasks"].as_array_mut()? {
                    let arn = task["taskArn"].as_str().unwrap_or_default().to_owned();
                    if let Some(stopped) = self.stopped_tasks.get(&arn) {
                        for field in
                            ["lastStatus", "desiredStatus", "stopCode", "stoppedReason", "stoppedAt", "containers"]
                        {
                            if let Some(value) = stopped.get(field) {
                                task[field] = value.clone();
                            }
                        }
                        changed = true;
                    }
                }
                changed.then_some(answer)
            }
            "DescribeServices" => {
                let mut changed = false;
                for service in answer["services"].as_array_mut()? {
                    let name = service["serviceName"].as_str().unwrap_or_default().to_owned();
                    if let Some(configuration) = self.native_services.get(&name) {
                        service["deploymentConfiguration"] = configuration.clone();
                        changed = true;
                    }
                    changed |= self.primary_of(&name, service);
                }
                changed.then_some(answer)
            }
            _ => None,
        }
    }

    /// `ContinueServiceDeployment`: "You can continue a deployment that has a pause hook in
    /// AWAITING_ACTION status. The deployment must be in the IN_PROGRESS state" (Developer Guide,
    /// "Continuing Amazon ECS service deployments"); `action` CONTINUE (the default) or ROLLBACK.
    /// The API Reference lists `InvalidParameterException` and `ClientException` among its errors
    /// without saying which one a deployment that does not wait gets; the stand-in answers
    /// `InvalidParameterException` (Convoy treats every ECS refusal alike).
    fn continue_service_deployment(&mut self, arn: &str, hook_id: &str, action: Option<&str>) -> Result<Reply, Reply> {
        let known = self.service_deployments.get_mut(arn).ok_or_else(|| not_found(arn))?;
        let rolls_back = match action.unwrap_or("CONTINUE") {
            "CONTINUE" => false,
            "ROLLBACK" => true,
            other => {
                return Err(refuse(
                    "InvalidParameterException",
                    format!("action {other} is not CONTINUE or ROLLBACK."),
                ));
            }
        };
        let awaiting = known.status == "IN_PROGRESS"
            && known.pause.as_ref().is_some_and(|(id, status)| id == hook_id && status == "AWAITING_ACTION");
        if !awaiting {
            return Err(refuse(
                "InvalidParameterException",
                format!(
                    "The lifecycle hook {hook_id} of service deployment {arn} ({}) is not awaiting action.",
                    known.status
                ),
            ));
        }
        known.pause = Some((hook_id.to_owned(), if rolls_back { "FAILED" } else { "SUCCEEDED" }.to_owned()));
        if rolls_back {
            known.status = "ROLLBACK_IN_PROGRESS".into();
        } else {
            known.stage = "PRODUCTION_TRAFFIC_SHIFT".into();
        }
        Ok((200, json!({"serviceDeploymentArn": arn})))
    }
}

impl Ecs {
    /// An `UpdateService` naming a task definition starts a new PRIMARY deployment of it: kept,
    /// and put in moto's answer (`described`, the service). Whether the answer changed.
    fn new_primary(&mut self, service: &str, request: &Value, described: &mut Value) -> bool {
        let Some(task_definition) = request["taskDefinition"].as_str() else { return false };
        // moto's answer names the task definition as ECS does (an ARN, whatever the request said).
        let task_definition = described["taskDefinition"].as_str().unwrap_or(task_definition).to_owned();
        let now = chrono::Utc::now();
        let created = now.timestamp() as f64 + f64::from(now.timestamp_subsec_millis()) / 1000.0;
        self.primary.insert(service.to_owned(), (task_definition, created));
        self.primary_of(service, described)
    }

    /// The service's deployments as ECS lists them after the last update: its PRIMARY one first
    /// (moto's own, with the update's revision, time and an id of its own). Whether it changed.
    fn primary_of(&self, service: &str, described: &mut Value) -> bool {
        let Some((task_definition, created)) = self.primary.get(service) else { return false };
        let Some(first) = described["deployments"].as_array().and_then(|d| d.first()).cloned() else { return false };
        let mut primary = first;
        primary["status"] = json!("PRIMARY");
        primary["taskDefinition"] = json!(task_definition);
        primary["createdAt"] = json!(created);
        primary["updatedAt"] = json!(created);
        primary["id"] = json!(format!("ecs-svc/{}", (*created * 1000.0) as u64));
        described["deployments"] = json!([primary]);
        true
    }

    /// Whether `service` is one a test declared (its `UpdateService` starts a service deployment).
    pub(super) fn declares(&self, service: &str) -> bool {
        self.native_services.contains_key(service)
    }

    /// The `UpdateService` about to be forwarded updates `service`, which runs `task_definition`.
    pub(super) fn updating(&mut self, service: &str, task_definition: String, authorization: String) {
        self.pending_source = Some((service.to_owned(), task_definition));
        self.authorization = authorization;
    }
}

impl StandIn {
    fn ecs(&self) -> std::sync::MutexGuard<'_, Ecs> {
        self.shared.ecs.lock().expect("ecs")
    }

    /// The task's containers exited as `event` (an "ECS Task State Change" STOPPED event) says:
    /// from now on `DescribeTasks` describes the task so, as ECS would before it sends the event.
    pub fn task_stops(&self, event: &Value) {
        let detail = &event["detail"];
        let arn = detail["taskArn"].as_str().expect("the event names its task").to_owned();
        self.ecs().stopped_tasks.insert(arn, detail.clone());
    }

    /// ECS pauses `service_deployment` at its PAUSE lifecycle hook (PRE_PRODUCTION_TRAFFIC_SHIFT),
    /// awaiting `ContinueServiceDeployment`; returns the hook's id, one of this pause's own.
    pub fn pause_service_deployment(&self, service_deployment: &str) -> String {
        let mut ecs = self.ecs();
        let known = ecs
            .service_deployments
            .get_mut(service_deployment)
            .unwrap_or_else(|| panic!("ECS pauses only service deployments it started, not {service_deployment}"));
        assert_eq!(known.status, "IN_PROGRESS", "ECS pauses only a service deployment in progress");
        let hook = format!("pause-{}", fresh_id());
        known.pause = Some((hook.clone(), "AWAITING_ACTION".into()));
        known.stage = "PRE_PRODUCTION_TRAFFIC_SHIFT".into();
        hook
    }

    /// `service` deploys natively (ECS controller) with `configuration` as its
    /// `deploymentConfiguration` (strategy, lifecycle hooks, bake time), which moto 5.2.5 drops:
    /// `DescribeServices` says it, and each `UpdateService` starts a service deployment.
    pub fn native_service(&self, service: &str, configuration: Value) {
        self.ecs().native_services.insert(service.to_owned(), configuration);
    }

    /// The task definition of each `UpdateService` of a declared service, oldest first.
    pub fn service_updates(&self) -> Vec<String> {
        let ecs = self.ecs();
        ecs.started
            .iter()
            .filter_map(|arn| ecs.service_deployments.get(arn))
            .map(|d| d.task_definition.clone())
            .collect()
    }

    /// The service deployments `UpdateService` started, oldest first.
    pub fn service_deployments(&self) -> Vec<String> {
        self.ecs().started.clone()
    }

    /// ECS reaches `stage` of `service_deployment`, asking for `weight`% of production traffic.
    pub fn service_deployment_at(&self, service_deployment: &str, stage: &str, weight: f64) {
        let mut ecs = self.ecs();
        let known = ecs.service_deployments.get_mut(service_deployment).expect("a known service deployment");
        known.stage = stage.to_owned();
        known.production_weight = weight;
    }

    /// ECS rolls `service_deployment` back for `reason` (a hook answered FAILED, an alarm, the
    /// circuit breaker): `ROLLBACK_IN_PROGRESS`, production traffic back on the blue revision.
    /// While it rolls back, ECS runs the TEST_TRAFFIC_SHIFT and PRODUCTION_TRAFFIC_SHIFT hooks
    /// again (tests/fixtures/events/README.md).
    pub fn service_deployment_rolls_back(&self, service_deployment: &str, reason: &str) {
        let mut ecs = self.ecs();
        let known = ecs.service_deployments.get_mut(service_deployment).expect("a known service deployment");
        assert!(!COMPLETED.contains(&known.status.as_str()), "{service_deployment} completed: {}", known.status);
        known.status = "ROLLBACK_IN_PROGRESS".into();
        known.reason = reason.to_owned();
        known.production_weight = 0.0;
    }

    /// `service` deploys by ECS rolling updates (ECS controller) with `configuration` as its
    /// `deploymentConfiguration` (`strategy` ROLLING, `deploymentCircuitBreaker`, `alarms`), which
    /// moto 5.2.5 drops; each `UpdateService` starts a service deployment, as ECS's service
    /// deployment API shows for rolling updates too.
    pub fn rolling_service(&self, service: &str, configuration: Value) {
        self.ecs().native_services.insert(service.to_owned(), configuration);
    }

    /// ECS's deployment circuit breaker triggers on `service_deployment` after `failures` tasks
    /// failed to start: with `rollback` on it rolls back (`ROLLBACK_IN_PROGRESS`, to complete with
    /// [`StandIn::rollback_completes`]), else the deployment stops (`STOPPED`).
    pub fn circuit_breaker_trips(&self, service_deployment: &str, failures: u32) {
        let mut ecs = self.ecs();
        let known = ecs.service_deployments.get_mut(service_deployment).expect("a known service deployment");
        let breaker = &known.configuration["deploymentCircuitBreaker"];
        assert_eq!(breaker["enable"], json!(true), "the service has no circuit breaker to trip");
        assert!(!COMPLETED.contains(&known.status.as_str()), "{service_deployment} completed: {}", known.status);
        known.breaker_failures = Some(failures.max(BREAKER_THRESHOLD));
        let rolls_back = breaker["rollback"] == json!(true);
        known.status = if rolls_back { "ROLLBACK_IN_PROGRESS" } else { "STOPPED" }.into();
        known.reason = "Service deployment failed: the deployment circuit breaker threshold was reached.".into();
    }

    /// One of the service's deployment alarms goes into ALARM during `service_deployment`: ECS
    /// rolls it back (`alarms.rollback`) or stops it.
    pub fn deployment_alarm_fires(&self, service_deployment: &str, alarm: &str) {
        let mut ecs = self.ecs();
        let known = ecs.service_deployments.get_mut(service_deployment).expect("a known service deployment");
        let alarms = &known.configuration["alarms"];
        assert_eq!(alarms["enable"], json!(true), "the service has no deployment alarms");
        assert!(alarms["alarmNames"].as_array().is_some_and(|a| a.contains(&json!(alarm))), "{alarm} is not watched");
        let rolls_back = alarms["rollback"] == json!(true);
        known.triggered_alarms.push(alarm.to_owned());
        known.status = if rolls_back { "ROLLBACK_IN_PROGRESS" } else { "STOPPED" }.into();
        known.reason = format!("Service deployment failed: alarm {alarm} is in ALARM.");
    }

    /// ECS's rollback of `service_deployment` completes: `ROLLBACK_SUCCESSFUL`, and the service
    /// runs the task definition it ran before (moto's service is updated back to it, as ECS's
    /// rollback does, without a service deployment of its own).
    pub async fn rollback_completes(&self, service_deployment: &str) {
        let (cluster, service, source, authorization) = {
            let mut ecs = self.ecs();
            let authorization = ecs.authorization.clone();
            let known = ecs.service_deployments.get_mut(service_deployment).expect("a known service deployment");
            assert_eq!(known.status, "ROLLBACK_IN_PROGRESS", "only a rollback in progress completes");
            known.status = "ROLLBACK_SUCCESSFUL".into();
            (known.cluster.clone(), known.service.clone(), known.source_task_definition.clone(), authorization)
        };
        assert!(!source.is_empty(), "the stand-in learned no source revision for {service_deployment}");
        let update = json!({"cluster": cluster, "service": service, "taskDefinition": source});
        let head = format!("Authorization: {authorization}");
        let target = "AmazonEC2ContainerServiceV20141113.UpdateService";
        let answer = super::moto_json(&self.shared.upstream, &head, target, &update)
            .await
            .expect("moto updates the service back");
        // ECS's own update starts a PRIMARY deployment of the source revision, as any update does.
        let mut described = answer["service"].clone();
        self.ecs().new_primary(&service, &update, &mut described);
    }

    /// ECS ends `service_deployment` with `status` (SUCCESSFUL, ROLLBACK_SUCCESSFUL, ...) and
    /// `reason`.
    pub fn service_deployment_ends(&self, service_deployment: &str, status: &str, reason: &str) {
        assert!(COMPLETED.contains(&status), "{status} is not how a service deployment ends");
        let mut ecs = self.ecs();
        let known = ecs.service_deployments.get_mut(service_deployment).expect("a known service deployment");
        known.status = status.to_owned();
        known.reason = reason.to_owned();
        if status == "SUCCESSFUL" {
            known.production_weight = 100.0;
            known.stage = "CLEAN_UP".into();
        }
    }
}
