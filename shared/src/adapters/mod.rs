//! Implementations of the ports: `aws` talks to AWS through the official SDK; `memory` keeps the
//! same contracts in process, for unit tests of the use cases and handlers.

pub mod aws;
pub mod memory;
