//! A group's release across its services: the stage after the migration, once every image is
//! pinned and the migration (the release's one) exited 0.
//!
//! The release takes the deploy lock of every one of its services at once (all or none, in name
//! order), then deploys the manifest's order one step at a time. Each service of a step deploys
//! through its **part**: a record of its own (`releases/<service>/<release>`), opened by
//! [`Release::part`] from the group's pinned images, that meets its deploy method, verification
//! and approval as a release of one service does. Each change of a part is told to the group's
//! record ([`Event::PartMoved`]), whose section for the service follows it
//! ([`SectionState::of_part`]):
//! - a step is through once each of its services is: verified (its traffic shift waits for the
//!   release's approval) or, taking no traffic, deployed; the next step then opens;
//! - the release succeeds once every service is live, and frees every lock;
//! - once a service fails (its verification, its deployment, a rollback, a rejection), no further
//!   step opens and every service the release changed is put back ([`Effect::RevertService`]);
//!   the release ends, `Failed` at the failing stage (or `RolledBack`), once each one is back.

use chrono::{DateTime, Utc};

use super::group::{SectionState, ServiceSection, image_slot};
use super::{
    ApprovalDecision, Context, Decision, DeployMethod, Effect, ImageStatus, Release, Stage, StageEvent, State,
    TransitionError,
};
use crate::manifest::{Approval, Manifest};
use crate::names::ServiceName;
use crate::scheduled::ScheduleMove;

/// The events of a group's deployment stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The deploy lock of every service of the release is this release's.
    LocksTaken { at: DateTime<Utc> },
    /// A service's part could not be opened (its service has a release of that id of its own).
    PartRefused { service: ServiceName, reason: String, at: DateTime<Utc> },
    /// A service's part changed: its record as stored now.
    PartMoved { part: Box<Release>, at: DateTime<Utc> },
    /// The scheduled tasks of a live service now run the release's revision (`moves`: those that
    /// ran another; none when there were none, or each ran it already).
    SchedulesMoved { service: ServiceName, moves: Vec<ScheduleMove>, at: DateTime<Utc> },
    /// The scheduled tasks a failed release had moved run their previous revisions again.
    SchedulesPutBack { service: ServiceName, at: DateTime<Utc> },
}

impl StageEvent for Event {
    fn apply_to(&self, release: &Release, _: &Context) -> Result<Decision, TransitionError> {
        Ok(match self {
            Event::LocksTaken { at } => release.on_locks_taken(*at),
            Event::PartRefused { service, reason, at } => {
                let state = SectionState::Failed { reason: reason.clone() };
                release.on_section(service, state, None, *at)
            }
            Event::SchedulesMoved { service, moves, at } => release.on_schedules_moved(service, moves, *at),
            Event::SchedulesPutBack { service, at } => release.on_schedules_put_back(service, *at),
            Event::PartMoved { part, at } => match &part.part_of {
                Some(group) if *group == release.key => {
                    release.on_section(&part.key.service, SectionState::of_part(part), Some(part), *at)
                }
                _ => Decision::unchanged(format!("{} is not a part of this release", part.key)),
            },
        })
    }
}

impl SectionState {
    /// Where a service stands, as its part's record says.
    pub fn of_part(part: &Release) -> SectionState {
        let run = part.deployment.as_ref();
        if let Some(put_back) = run.and_then(|r| r.put_back.as_ref()) {
            let revision = &put_back.task_definition;
            return match put_back.done_at {
                Some(_) => SectionState::RolledBack { reason: format!("put back on {revision}") },
                None => SectionState::RollingBack { reason: format!("being put back on {revision}") },
            };
        }
        match &part.state {
            State::Ready { .. } | State::Queued { .. } | State::StartingDeployment | State::Deploying { .. } => {
                SectionState::Deploying
            }
            State::Verifying { .. } => SectionState::Verifying,
            State::AwaitingApproval { .. } | State::ShiftingTraffic { .. } => SectionState::Through,
            State::Succeeded => SectionState::Live,
            State::RollingBack { reason, .. } => SectionState::RollingBack { reason: reason.clone() },
            State::RolledBack { reason } => SectionState::RolledBack { reason: reason.clone() },
            State::Failed { stage, reason } => SectionState::Failed { reason: format!("{stage}: {reason}") },
            State::Superseded { by } => SectionState::Failed { reason: format!("superseded by release {by}") },
            _ => SectionState::Waiting,
        }
    }

    /// Whether the service failed (or is going back): the release fails with it.
    pub fn failed(&self) -> bool {
        matches!(self, SectionState::RollingBack { .. } | SectionState::RolledBack { .. } | SectionState::Failed { .. })
    }

    fn through(&self) -> bool {
        matches!(self, SectionState::Through | SectionState::Live)
    }
}

impl ServiceSection {
    /// Whether the release changed this service and it is not back yet: what a failed release
    /// puts back. A blue/green deployment that completed cannot be put back by Convoy (CodeDeploy
    /// and ECS roll back only a deployment in flight): it stays, and the record says so.
    fn to_put_back(&self) -> bool {
        match self.state {
            SectionState::Deploying | SectionState::Verifying | SectionState::Through => true,
            SectionState::Live => self.method == DeployMethod::EcsRolling,
            _ => false,
        }
    }
}

impl Release {
    /// What the services of step `step` are, in the manifest's order.
    fn step_services(&self, step: usize) -> Vec<ServiceName> {
        self.services.iter().filter(|s| s.step == step).map(|s| s.service.clone()).collect()
    }

    fn on_locks_taken(&self, at: DateTime<Utc>) -> Decision {
        if !matches!(self.state, State::Ready { next: Stage::Deployment } | State::Queued { .. }) {
            return Decision::unchanged(format!("the services' locks are not due: the release is {}", self.state));
        }
        let mut next = self.clone();
        let services = self.step_services(0);
        next.state = State::DeployingServices { step: 0 };
        let all = self.services.iter().map(|s| s.service.to_string()).collect::<Vec<_>>();
        next.record(at, "services-locked", format!("the deploy locks of {} are this release's", all.join(", ")));
        next.record(at, "step-started", step_detail(0, &services));
        Decision::changed(next, vec![Effect::OpenServices { services }])
    }

    /// A service's section moved to `state` (`part`: its part's record, when it has one).
    fn on_section(
        &self,
        service: &ServiceName,
        state: SectionState,
        part: Option<&Release>,
        at: DateTime<Utc>,
    ) -> Decision {
        let Some(index) = self.services.iter().position(|s| s.service == *service) else {
            return Decision::unchanged(format!("{service} is not a service of this release"));
        };
        if let Some(part) = part
            && part.timeline.len() < self.services[index].part_entries
        {
            return Decision::unchanged(format!("an older read of {service}'s part: the record follows a newer one"));
        }
        let mut next = self.clone();
        let section = &mut next.services[index];
        section.state = state;
        if let Some(part) = part {
            section.part_entries = part.timeline.len();
        }
        if let Some(run) = part.and_then(|p| p.deployment.as_ref()) {
            section.deployment = run.id.clone().or(section.deployment.take());
            section.revision = run.task_definition.clone().or(section.revision.take());
            section.previous_revision = run.previous_task_definition.clone().or(section.previous_revision.take());
        }
        if let Some(verification) = part.and_then(|p| p.verification.as_ref()) {
            section.verification = Some(verification.clone());
        }
        if let Some(approval) = part.and_then(|p| p.approval.as_ref()) {
            section.approval = Some(approval.clone());
        }
        let same = ServiceSection { part_entries: self.services[index].part_entries, ..next.services[index].clone() };
        if same == self.services[index] {
            return Decision::unchanged(format!("{service} is where the record has it"));
        }
        let section = &next.services[index];
        let deployment = section.deployment.as_ref().map_or(String::new(), |d| format!(" ({d})"));
        let (detail, failed) =
            (format!("{service}: {}{deployment}", section_words(&section.state)), section.state.failed());
        let was = &self.services[index];
        // A section that only took its part's approval (or verification's detail) is recorded,
        // but the timeline names a service's move only when it moved.
        if (&was.state, &was.deployment) != (&section.state, &section.deployment) {
            next.record(at, "service-moved", detail);
        }
        let now_live =
            next.services[index].state == SectionState::Live && self.services[index].state != SectionState::Live;
        let effects = match &self.state {
            State::DeployingServices { .. } if failed => next.start_putting_back(index, at),
            State::DeployingServices { step } => {
                let mut effects = next.after_step_moved(*step, at);
                if now_live {
                    effects.insert(0, Effect::MoveSchedules { service: service.clone() });
                }
                effects.extend(next.carry_the_approval(at));
                effects
            }
            State::RevertingServices { .. } => {
                let mut effects = Vec::new();
                if next.services[index].to_put_back() {
                    // It moved on before its put back could take (a start that was in flight).
                    effects.push(Effect::RevertService { service: service.clone() });
                }
                effects.extend(next.end_if_all_back(at));
                effects
            }
            // Before its services deploy, or after it ended: the section is kept up to date only.
            _ => Vec::new(),
        };
        Decision::changed(next, effects)
    }

    /// The release's one approval: the first a person gave on any of its services (each part of a
    /// service that takes traffic waits for its own, and a person approves one of them). Once
    /// there is one, every other verified service that awaits a decision shifts with it. Its
    /// effects: a continue for each of those, once per change of the record.
    fn carry_the_approval(&mut self, at: DateTime<Utc>) -> Vec<Effect> {
        let person = |a: &&ApprovalDecision| a.approved && !a.by_policy();
        let Some((service, first)) = self
            .services
            .iter()
            .filter_map(|s| s.approval.as_ref().filter(person).map(|a| (s.service.clone(), a)))
            .min_by_key(|(_, a)| a.at)
            .map(|(service, a)| (service, a.clone()))
        else {
            return Vec::new();
        };
        if self.approval.as_ref().is_none_or(|a| a.at != first.at || a.by != first.by) {
            let carried = self.services.iter().filter(|s| s.takes_traffic && s.service != service).count();
            let then = match carried {
                0 => String::new(),
                _ => "; every other service that takes traffic shifts with it once verified".into(),
            };
            if self.approval.is_none() {
                self.record(at, "approved", format!("by {} on {service}{then}", first.by));
            } else {
                self.record(at, "attributed", format!("the release's approval on {service}: {}", first.by));
            }
            self.approval = Some(first);
        }
        self.services
            .iter()
            .filter(|s| s.takes_traffic && s.approval.is_none() && s.state == SectionState::Through)
            .map(|s| Effect::ApproveWithRelease { service: s.service.clone() })
            .collect()
    }

    /// Who approved the release and on which service, as a part it carries to names it.
    pub fn release_approver(&self) -> Option<String> {
        let approval = self.approval.as_ref().filter(|a| a.approved && !a.by_policy())?;
        let service = self.services.iter().find(|s| s.approval.as_ref() == Some(approval))?;
        Some(format!("{} approved it on {}", approval.by, service.service))
    }

    /// The section at `failed` failed: no further step opens, every changed service goes back.
    fn start_putting_back(&mut self, failed: usize, at: DateTime<Utc>) -> Vec<Effect> {
        let section = &self.services[failed];
        let reason = format!("service {}: {}", section.service, section_words(&section.state));
        let stage = failed_stage(&section.state, section.verification.as_ref());
        let back: Vec<ServiceName> =
            self.services.iter().filter(|s| s.to_put_back()).map(|s| s.service.clone()).collect();
        let detail = match back.as_slice() {
            [] => format!("{reason}; no other service was changed"),
            _ => format!(
                "{reason}; putting back {}",
                back.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            ),
        };
        self.state = State::RevertingServices { stage, reason };
        self.record(at, "reverting", detail);
        let mut effects: Vec<Effect> = back.into_iter().map(|service| Effect::RevertService { service }).collect();
        effects.extend(self.end_if_all_back(at));
        effects
    }

    /// Every section of `step` is through: the next step opens, or, after the last, the release
    /// succeeds once every service is live.
    fn after_step_moved(&mut self, step: usize, at: DateTime<Utc>) -> Vec<Effect> {
        if !self.services.iter().filter(|s| s.step <= step).all(|s| s.state.through()) {
            return Vec::new();
        }
        let following = self.step_services(step + 1);
        if !following.is_empty() {
            self.state = State::DeployingServices { step: step + 1 };
            self.record(at, "step-started", step_detail(step + 1, &following));
            return vec![Effect::OpenServices { services: following }];
        }
        if self.services.iter().all(|s| s.state == SectionState::Live) {
            self.state = State::Succeeded;
            let all = self.services.iter().map(|s| s.service.to_string()).collect::<Vec<_>>();
            self.record(at, "succeeded", format!("every service runs the release: {}", all.join(", ")));
            return vec![Effect::ReleaseServiceLocks];
        }
        Vec::new()
    }

    /// Ends a failing release once no service it changed is left to put back.
    fn end_if_all_back(&mut self, at: DateTime<Utc>) -> Vec<Effect> {
        let State::RevertingServices { stage, reason } = &self.state else { return Vec::new() };
        if self.services.iter().any(|s| s.to_put_back() || matches!(s.state, SectionState::RollingBack { .. })) {
            return Vec::new();
        }
        let (stage, reason) = (*stage, reason.clone());
        let kept: Vec<String> =
            self.services.iter().filter(|s| s.state == SectionState::Live).map(|s| s.service.to_string()).collect();
        let now_runs = self
            .services
            .iter()
            .map(|s| format!("{} {}", s.service, section_words(&s.state)))
            .collect::<Vec<_>>()
            .join("; ");
        let kept = match kept.as_slice() {
            [] => String::new(),
            kept => format!(
                " ({} kept the release: a completed blue/green deployment is not rolled back; deploy the previous \
                 release to return it)",
                kept.join(", ")
            ),
        };
        self.state = match stage {
            Some(stage) => State::Failed { stage, reason },
            None => State::RolledBack { reason },
        };
        self.record(at, "services-back", format!("{now_runs}{kept}"));
        vec![Effect::ReleaseServiceLocks]
    }

    fn on_schedules_moved(&self, service: &ServiceName, moves: &[ScheduleMove], at: DateTime<Utc>) -> Decision {
        if self.is_of_one_service() && self.key.service == *service {
            if !self.schedules.is_empty() || moves.is_empty() || self.state != State::Succeeded {
                return Decision::unchanged(format!("no scheduled task of {service} to record as moved"));
            }
            let mut next = self.clone();
            next.schedules = moves.to_vec();
            next.record(at, "schedules-moved", moved_words(moves));
            return Decision::changed(next, Vec::new());
        }
        let Some(index) = self.services.iter().position(|s| s.service == *service) else {
            return Decision::unchanged(format!("{service} is not a service of this release"));
        };
        let section = &self.services[index];
        if !section.schedules.is_empty() || moves.is_empty() {
            return Decision::unchanged(format!("no scheduled task of {service} to record as moved"));
        }
        let mut next = self.clone();
        next.services[index].schedules = moves.to_vec();
        next.record(at, "schedules-moved", format!("{service}: {}", moved_words(moves)));
        Decision::changed(next, Vec::new())
    }

    /// A release of one service, not a part of a group's: it moves its own scheduled tasks.
    fn is_of_one_service(&self) -> bool {
        self.group.is_none() && self.part_of.is_none()
    }

    fn on_schedules_put_back(&self, service: &ServiceName, at: DateTime<Utc>) -> Decision {
        let Some(index) = self.services.iter().position(|s| s.service == *service) else {
            return Decision::unchanged(format!("{service} is not a service of this release"));
        };
        let section = &self.services[index];
        if section.schedules.is_empty() || section.schedules_put_back {
            return Decision::unchanged(format!("no scheduled task of {service} to put back"));
        }
        let mut next = self.clone();
        next.services[index].schedules_put_back = true;
        let back: Vec<String> =
            section.schedules.iter().map(|m| format!("{} runs {} again", m.target, m.previous)).collect();
        next.record(at, "schedules-put-back", format!("{service}: {}", back.join(", ")));
        Decision::changed(next, Vec::new())
    }

    /// The part of this group's release that deploys `service`: a record of one service, ready
    /// for its deployment, its images the group's pinned digests (the migration ran already).
    /// `None` when `service` is not one of the release's.
    pub fn part(&self, service: &ServiceName, at: DateTime<Utc>) -> Option<Release> {
        let group = self.group.as_ref()?;
        let section = self.section(service)?;
        let wanted = group.services.get(service)?;
        let mut part = Release::empty(
            crate::names::ReleaseKey::new(service.clone(), self.key.release.clone()),
            self.source.clone(),
        );
        let mut images = std::collections::BTreeMap::new();
        for (container, name) in &section.containers {
            let status = self.images.get(&image_slot(name))?;
            images.insert(container.clone(), status.image.clone());
            part.images.insert(container.clone(), ImageStatus { ..status.clone() });
        }
        // The release's one approval holds the shift of each service that takes traffic; one that
        // takes none follows its settings (a rolling update is approved by policy only).
        let approval = if section.takes_traffic { group.approval } else { None::<Approval> };
        part.manifest = Some(Manifest {
            images,
            migration: None,
            verify: wanted.verify.clone(),
            approval,
            rollback: group.rollback.clone(),
        });
        part.part_of = Some(self.key.clone());
        // A part of a group's rollback says so too: its service's history shows it.
        part.rollback.clone_from(&self.rollback);
        part.settings = self.settings.clone();
        // The group's drift check of this service decides what its revision derives from.
        part.drift = self.drift.iter().filter(|c| c.service == *service).cloned().collect();
        part.state = State::Ready { next: Stage::Deployment };
        let detail = format!(
            "service {service} of release {} (step {}): its images pinned by that release, its migration run by it",
            self.key,
            section.step + 1
        );
        part.record(at, "part-opened", detail);
        Some(part)
    }
}

/// What a failed section makes the release fail at (`None`: rolled back, not failed).
fn failed_stage(state: &SectionState, verification: Option<&super::Verification>) -> Option<Stage> {
    let verification_failed = verification.and_then(|v| v.outcome.as_ref()).is_some_and(|o| !o.passed);
    match state {
        _ if verification_failed => Some(Stage::Verification),
        SectionState::Failed { .. } => Some(Stage::Deployment),
        _ => None,
    }
}

fn moved_words(moves: &[ScheduleMove]) -> String {
    moves.iter().map(|m| format!("{} ({} → {})", m.target, m.previous, m.revision)).collect::<Vec<_>>().join(", ")
}

impl Decision {
    /// A release of one service that this decision makes live moves its service's scheduled
    /// tasks to its revision (`Effect::MoveSchedules`), as a group's release does for each of its
    /// services; a part's are its group's to move. `before`: the record the decision was made on.
    pub(crate) fn moving_schedules(self, before: &Release) -> Decision {
        match self {
            Decision::Changed { release, mut effects, passed }
                if release.state == State::Succeeded
                    && before.state != State::Succeeded
                    && release.is_of_one_service() =>
            {
                effects.push(Effect::MoveSchedules { service: release.key.service.clone() });
                Decision::Changed { release, effects, passed }
            }
            other => other,
        }
    }
}

fn step_detail(step: usize, services: &[ServiceName]) -> String {
    let names = services.iter().map(ToString::to_string).collect::<Vec<_>>();
    format!("step {}: {}", step + 1, names.join(", "))
}

/// A section's state as a person reads it.
pub fn section_words(state: &SectionState) -> String {
    match state {
        SectionState::Waiting => "waiting".into(),
        SectionState::Deploying => "deploying".into(),
        SectionState::Verifying => "verifying".into(),
        SectionState::Through => "verified, its traffic shift waits for the approval".into(),
        SectionState::Live => "live".into(),
        SectionState::RollingBack { reason } => format!("rolling back: {reason}"),
        SectionState::RolledBack { reason } => format!("rolled back: {reason}"),
        SectionState::Failed { reason } => format!("failed: {reason}"),
    }
}
