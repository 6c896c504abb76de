//! What `convoy status` shows of an ECS native service deployment: its strategy (all at once,
//! linear or canary steps), how far production traffic has shifted, and the bake time.

use crate::release::NativeProgress;

/// `(name, value)` lines for the deployment section; none without a native deployment.
pub(crate) fn lines(native: Option<&NativeProgress>) -> Vec<(&'static str, Option<String>)> {
    let Some(native) = native else { return Vec::new() };
    let shift = match (native.production_percent, native.stage.as_deref()) {
        (Some(percent), Some(stage)) => Some(format!("{percent}% of production traffic ({stage})")),
        (Some(percent), None) => Some(format!("{percent}% of production traffic")),
        (None, Some(stage)) => Some(stage.to_owned()),
        (None, None) => None,
    };
    let seen = native.seen_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    vec![
        ("strategy", Some(native.strategy.clone())),
        ("shift", shift),
        ("bake time", native.bake_minutes.map(|m| format!("{m} min"))),
        ("ecs status", Some(format!("{} (as of {seen})", native.status))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_canary_shift_is_shown_with_its_step_share_and_bake_time() {
        let progress = NativeProgress {
            strategy: "canary, 10% for 5 min, then the rest".into(),
            bake_minutes: Some(15),
            production_percent: Some(10),
            stage: Some("PRODUCTION_TRAFFIC_SHIFT".into()),
            status: "IN_PROGRESS".into(),
            seen_at: "2026-01-01T00:00:00Z".parse().unwrap(),
        };
        let shown: Vec<(&str, String)> =
            lines(Some(&progress)).into_iter().filter_map(|(name, value)| Some((name, value?))).collect();
        assert_eq!(
            shown,
            [
                ("strategy", "canary, 10% for 5 min, then the rest".to_owned()),
                ("shift", "10% of production traffic (PRODUCTION_TRAFFIC_SHIFT)".to_owned()),
                ("bake time", "15 min".to_owned()),
                ("ecs status", "IN_PROGRESS (as of 2026-01-01T00:00:00Z)".to_owned()),
            ]
        );
        assert!(lines(None).is_empty());
    }
}
