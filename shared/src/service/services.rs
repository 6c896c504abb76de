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
        Ok(None)
    }
}
