//! End-to-end tests: Convoy's real handlers and adapters against moto server (and, for the
//! property runs, the same scenarios against the in-memory fakes).

mod approval;
mod bad_input;
mod bucket_policy;
mod ceiling;
mod cli;
mod dashboard;
mod deadlines;
mod deploy;
mod deployment_end;
mod event_rules;
mod forged;
mod gates;
mod grants;
mod group_wait;
mod groups;
mod hostile_output;
mod image_gate;
mod init;
mod lost_manifests;
mod migration;
mod migration_logs;
mod native;
mod pipeline;
mod properties;
mod quick_start;
mod readiness;
mod reconcile;
mod refusals;
mod release_events;
mod rolling;
mod sandbox;
mod scenario;
mod settings_file;
mod store;
mod trust;
