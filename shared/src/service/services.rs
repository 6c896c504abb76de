//! A group's release across its services (the pure rules: `release/services.rs`): its services'
//! deploy locks taken all or none, its parts opened and started step by step, each part's change
//! told to the group's record, and a failed release's parts put back.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use tracing::{Instrument, info, warn};

use super::transition::Outbox;
use super::{Convoy, Report, release_span};
use crate::error::ConvoyError;
use crate::names::{ReleaseKey, ServiceName};
use crate::ports::{LockEntry, Stored};
use crate::release::{LockDecision, Release, Stage, State, deployment, services};

impl Convoy {
    /// Takes the deploy lock of every service of the group's release, in name order, all or none:
    /// a lock another release holds frees the ones taken here, and the release queues behind it
    /// (two releases that share services never hold one each and wait for the other).
    pub(super) async fn take_service_locks_in(
        &self,
        outbox: &Outbox,
        key: &ReleaseKey,
        known: Option<Stored>,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let Some(stored) = self.known_or_loaded(key, known).await? else { return Ok(None) };
        let release = &stored.release;
        if !matches!(release.state, State::Ready { next: Stage::Deployment } | State::Queued { .. }) {
            let outcome = self.transition(outbox, key, Some(stored), &services::Event::LocksTaken { at: now }).await?;
            return Ok(outcome.map(|o| o.report()));
        }
        let names: BTreeSet<ServiceName> = release.services.iter().map(|s| s.service.clone()).collect();
        let entry = LockEntry {
            opened_at: release.opened_at(),
            release: key.release.clone(),
            group: Some(key.service.clone()),
        };
        let mut taken = Vec::new();
        for service in &names {
            let decision = self.change_lock_of(key, service, |lock| lock.acquire(&entry)).await?;
            if decision == LockDecision::Acquired {
                taken.push(service.clone());
                continue;
            }
            info!(%service, ?decision, "a service of the release is held; freeing the locks taken");
            for freed in &taken {
                self.change_lock_of(key, freed, |lock| {
                    let next = lock.release(&key.release);
                    ((), next)
                })
                .await?;
            }
            let event = deployment::Event::Lock { decision, at: now };
            let outcome = self.transition(outbox, key, Some(stored), &event).await?;
            return Ok(outcome.map(|o| o.report()));
        }
        let outcome = self.transition(outbox, key, Some(stored), &services::Event::LocksTaken { at: now }).await?;
        Ok(outcome.map(|o| o.report()))
    }

    /// Opens the parts of `services` (each once: the record is created conditionally) and starts
    /// each one's deployment, as the deploy method of its service's settings does it; only while
    /// the group's release deploys the step they belong to (it may have failed since it asked).
    pub(super) async fn open_services_in(
        &self,
        outbox: &Outbox,
        group: &ReleaseKey,
        wanted: &[ServiceName],
        now: DateTime<Utc>,
    ) -> Result<(), ConvoyError> {
        let Some(stored) = self.store.load(group).await? else { return Ok(()) };
        let group = &stored.release;
        let State::DeployingServices { step } = group.state else {
            info!(state = %group.state, "the release no longer deploys its services: no part opened");
            return Ok(());
        };
        let due = |service: &ServiceName| group.section(service).is_some_and(|s| s.step == step);
        for service in wanted.iter().filter(|s| due(s)) {
            let Some(part) = group.part(service, now) else { continue };
            let part_key = part.key.clone();
            let span = release_span(&part_key);
            async {
                self.active.mark_active(&part_key).await?;
                let known = match self.create(outbox, part).await? {
                    Some(created) => Some(created.stored()),
                    None => match self.store.load(&part_key).await? {
                        Some(stored) if stored.release.part_of.as_ref() == Some(&group.key) => Some(stored),
                        _ => {
                            let reason = format!(
                                "service {service} has a release {} of its own: the part was not opened",
                                part_key.release
                            );
                            warn!(%reason, "part refused");
                            let event = services::Event::PartRefused { service: service.clone(), reason, at: now };
                            Box::pin(self.transition(outbox, &group.key, None, &event)).await?;
                            return Ok(());
                        }
                    },
                };
                Box::pin(self.start_deployment_in(outbox, &part_key, known, now)).await?;
                Ok::<(), ConvoyError>(())
            }
            .instrument(span)
            .await?;
        }
        Ok(())
    }

    /// Tells the group's release what its part's record (`part`) says now.
    pub(super) async fn tell_group(
        &self,
        outbox: &Outbox,
        part: &ReleaseKey,
        now: DateTime<Utc>,
    ) -> Result<(), ConvoyError> {
        let Some(stored) = self.store.load(part).await? else { return Ok(()) };
        let Some(group) = stored.release.part_of.clone() else { return Ok(()) };
        let event = services::Event::PartMoved { part: Box::new(stored.release), at: now };
        Box::pin(self.transition(outbox, &group, None, &event)).instrument(release_span(&group)).await?;
        Ok(())
    }

    /// Asks the part of `service` to go back to what its service ran before the release.
    pub(super) async fn revert_part_in(
        &self,
        outbox: &Outbox,
        group: &ReleaseKey,
        service: &ServiceName,
        now: DateTime<Utc>,
    ) -> Result<(), ConvoyError> {
        let Some(stored) = self.store.load(group).await? else { return Ok(()) };
        let reason = match &stored.release.state {
            State::RevertingServices { reason, .. } => reason.clone(),
            State::Failed { reason, .. } | State::RolledBack { reason } => reason.clone(),
            other => {
                info!(state = %other, "the release does not go back: nothing is put back");
                return Ok(());
            }
        };
        let part = ReleaseKey::new(service.clone(), group.release.clone());
        let event = deployment::Event::RevertRequested { reason, at: now };
        Box::pin(self.transition(outbox, &part, None, &event)).instrument(release_span(&part)).await?;
        self.put_back_schedules(outbox, &stored.release, service, now).await
    }

    /// Carries the group's approval (a person's, on another of its services) to the part of
    /// `service`: its verified shift goes on with Convoy's role, once (the part's conditional write
    /// decides; the continue follows it). Not while an alarm that gates it is in ALARM: the alarm
    /// rolls it back instead.
    pub(super) async fn approve_part_in(
        &self,
        outbox: &Outbox,
        group: &ReleaseKey,
        service: &ServiceName,
        now: DateTime<Utc>,
    ) -> Result<(), ConvoyError> {
        let Some(stored) = self.store.load(group).await? else { return Ok(()) };
        let approver = match (&stored.release.state, stored.release.release_approver()) {
            (State::DeployingServices { .. }, Some(approver)) => approver,
            (state, _) => {
                info!(%state, %service, "no approval of the release to carry");
                return Ok(());
            }
        };
        let part = ReleaseKey::new(service.clone(), group.release.clone());
        let Some(known) = self.store.load(&part).await? else { return Ok(()) };
        if !matches!(known.release.state, State::AwaitingApproval { .. }) {
            info!(state = %known.release.state, %service, "the part awaits no approval");
            return Ok(());
        }
        match self.refuse_while_alarmed(&known.release).await {
            Ok(()) => {}
            Err(ConvoyError::Refused(why)) => {
                warn!(%why, %service, "the release's approval is not carried while an alarm is in ALARM");
                return Ok(());
            }
            // CloudWatch did not answer: the reconciler's visit carries it later.
            Err(err) => return Err(err),
        }
        let event = crate::release::approval::Event::ApprovedWithRelease { approver, at: now };
        Box::pin(self.transition(outbox, &part, Some(known), &event)).instrument(release_span(&part)).await?;
        Ok(())
    }

    /// A live service's scheduled tasks (schedules and rules running its task family) move to the
    /// release's revision, once: only while the release deploys (or has just succeeded), and only
    /// if none were recorded as moved; a task that runs the revision already is not written.
    pub(super) async fn move_schedules_in(
        &self,
        outbox: &Outbox,
        group: &ReleaseKey,
        service: &ServiceName,
        now: DateTime<Utc>,
    ) -> Result<(), ConvoyError> {
        let Some(stored) = self.store.load(group).await? else { return Ok(()) };
        let release = &stored.release;
        if !matches!(release.state, State::DeployingServices { .. } | State::Succeeded) {
            info!(state = %release.state, %service, "the release goes back: no scheduled task moves");
            return Ok(());
        }
        let (moved, revision) = match release.section(service) {
            Some(section) => (!section.schedules.is_empty(), section.revision.clone()),
            // A release of one service: the revision its deployment carried.
            None if release.services.is_empty() && release.key.service == *service => {
                (!release.schedules.is_empty(), release.deployment.as_ref().and_then(|d| d.task_definition.clone()))
            }
            None => return Ok(()),
        };
        let Some(revision) = revision.filter(|_| !moved) else { return Ok(()) };
        let Some(family) = crate::release::task_definition_family(&revision) else { return Ok(()) };
        let mut moves = Vec::new();
        for task in self.scheduled_tasks.find(family).await? {
            match self.scheduled_tasks.point(&task.target, &revision).await? {
                crate::scheduled::Pointed::Moved { previous } => {
                    info!(target = %task.target, %previous, %revision, "scheduled task moved");
                    moves.push(crate::scheduled::ScheduleMove {
                        target: task.target,
                        previous,
                        revision: revision.clone(),
                    });
                }
                crate::scheduled::Pointed::Already => {}
            }
        }
        let event = services::Event::SchedulesMoved { service: service.clone(), moves, at: now };
        Box::pin(self.transition(outbox, group, Some(stored), &event)).await?;
        Ok(())
    }

    /// Points the scheduled tasks the release moved for `service` back at what they ran before.
    /// A task deleted since is logged and skipped: there is nothing to put back.
    async fn put_back_schedules(
        &self,
        outbox: &Outbox,
        group: &Release,
        service: &ServiceName,
        now: DateTime<Utc>,
    ) -> Result<(), ConvoyError> {
        let Some(section) = group.section(service).filter(|s| !s.schedules.is_empty() && !s.schedules_put_back) else {
            return Ok(());
        };
        for moved in &section.schedules {
            match self.scheduled_tasks.point(&moved.target, &moved.previous).await {
                Ok(_) => info!(target = %moved.target, previous = %moved.previous, "scheduled task put back"),
                Err(crate::error::ScheduleError::NotFound(what)) => warn!(%what, "a moved scheduled task is gone"),
                Err(err) => return Err(err.into()),
            }
        }
        let event = services::Event::SchedulesPutBack { service: service.clone(), at: now };
        Box::pin(self.transition(outbox, &group.key, None, &event)).await?;
        Ok(())
    }

    /// The group's release ended: each of its services' locks is freed (and a release queued
    /// behind one started).
    pub(super) async fn release_service_locks(
        &self,
        outbox: &Outbox,
        group: &Release,
        now: DateTime<Utc>,
    ) -> Result<(), ConvoyError> {
        let names: BTreeSet<ServiceName> = group.services.iter().map(|s| s.service.clone()).collect();
        for service in &names {
            self.free_lock_of(outbox, &group.key, service, now).await?;
        }
        Ok(())
    }

    /// The reconciler's look at a group's release whose services deploy: each opened part's
    /// record is told again (a tell lost to a crash between a part's write and the group's is
    /// made up here).
    pub(super) async fn observe_parts(
        &self,
        outbox: &Outbox,
        group: &Release,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        if let State::DeployingServices { step } = group.state {
            // A step whose opening was lost (a crash after the group's write) opens now.
            let waiting: Vec<ServiceName> = group
                .services
                .iter()
                .filter(|s| s.step == step && s.state == crate::release::SectionState::Waiting)
                .map(|s| s.service.clone())
                .collect();
            self.open_services_in(outbox, &group.key, &waiting, now).await?;
        }
        for section in &group.services {
            outbox.tell(&ReleaseKey::new(section.service.clone(), group.key.release.clone()));
        }
        if matches!(group.state, State::DeployingServices { .. }) && group.release_approver().is_some() {
            // The release's approval carried to a waiting part, lost to a crash, is carried now.
            let waiting = group.services.iter().filter(|s| {
                s.takes_traffic && s.approval.is_none() && s.state == crate::release::SectionState::Through
            });
            for section in waiting {
                outbox.defer(super::transition::Deferred::Approve {
                    group: group.key.clone(),
                    service: section.service.clone(),
                });
            }
        }
        if matches!(group.state, State::RevertingServices { .. }) {
            // A put back that failed (AWS unavailable, a claim whose holder crashed) is asked again.
            for section in group.services.iter().filter(|s| s.state != crate::release::SectionState::Waiting) {
                outbox.defer(super::transition::Deferred::Revert {
                    group: group.key.clone(),
                    service: section.service.clone(),
                });
            }
        }
        Ok(None)
    }
}
