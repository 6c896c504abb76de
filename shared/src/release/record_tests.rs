//! What `release/mod.rs` itself says of a record: the state as a person reads it, the work a
//! stored state asks for, the images pinned for task definitions.

use super::test_support::{APP, opened_with_its_image_found, ready};
use super::*;

#[test]
fn a_state_reads_as_a_person_would_say_it_with_what_it_waits_on() {
    let deployment = DeploymentRef::CodeDeploy("d-ABCDEFGH1".parse().unwrap());
    assert_eq!(State::Collecting.to_string(), "Collecting");
    assert_eq!(State::Gating { next: Stage::Migration }.to_string(), "Gating images (next: migration)");
    assert_eq!(
        State::AwaitingApproval { deployment: deployment.clone() }.to_string(),
        "Awaiting approval (d-ABCDEFGH1)"
    );
    let rolling_back = State::RollingBack { deployment, reason: "2 of 3 probes failed".into() };
    assert_eq!(rolling_back.to_string(), "Rolling back (d-ABCDEFGH1): 2 of 3 probes failed");
    let failed = State::Failed { stage: Stage::Gate, reason: "CRITICAL".into() };
    assert_eq!(failed.to_string(), "Failed at gate: CRITICAL");
}

#[test]
fn a_stored_state_asks_for_the_work_that_moves_it_on() {
    let (collecting, _) = opened_with_its_image_found(true);
    assert!(matches!(collecting.pending_work().as_slice(), [Effect::ResolveImages { images }] if images.len() == 1));
    let mut release = ready(true);
    for (state, work) in [
        (State::Gating { next: Stage::Migration }, Effect::JudgeImages),
        (State::Ready { next: Stage::Migration }, Effect::StartMigration),
        (State::Ready { next: Stage::Deployment }, Effect::StartDeployment),
    ] {
        release.state = state.clone();
        assert_eq!(release.pending_work(), vec![work], "{state}");
    }
    release.state = State::Succeeded;
    assert!(release.pending_work().is_empty(), "an ended release asks for nothing");
}

#[test]
fn the_pinned_images_name_each_container_by_digest() {
    let pinned = ready(false).pinned_uris();
    let registry = APP.split_once('/').unwrap().0;
    assert_eq!(pinned, vec![("app".to_owned(), format!("{registry}/app@sha256:aa"))]);
    let (opened, _) = opened_with_its_image_found(false);
    assert!(opened.pinned_uris().is_empty(), "nothing pinned yet");
    assert_eq!(opened.pinned_images().count(), 1, "but the image is named");
}
