//! Convoy's library: the release manifest, the release record and its pure state machine, the ports
//! Convoy's use cases need, their AWS adapters and in-memory fakes, and the Lambda handlers.

pub mod adapters;
pub mod approval_gate;
pub mod bundle;
pub mod ceiling;
pub mod cloudtrail;
pub mod config;
pub mod drift;
pub mod error;
pub mod events;
pub mod gates;
pub mod group_view;
pub mod handlers;
pub mod history;
pub mod image_policy;
pub mod manifest;
pub mod names;
pub mod notify;
pub mod ports;
pub mod release;
pub mod rollback;
pub mod scheduled;
pub mod service;
pub mod settings;
pub mod settings_file;
pub mod startup;
pub mod status;
mod status_native;
pub mod submitter;
pub mod taskdef;
pub mod telemetry;
pub mod verify;
