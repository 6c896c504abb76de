//! Convoy's library: the release manifest, the release record and its pure state machine, the ports
//! Convoy's use cases need, their AWS adapters and in-memory fakes, and the Lambda handlers.

pub mod manifest;
pub mod names;
pub mod release;
