//! The end-to-end harness: a moto server per test process, SDK clients pointed at it, the world
//! the tests need (bucket, repositories, images), and the documented event fixtures.

pub mod account;
pub mod browser;
pub mod cbor;
pub mod dashboard;
pub mod fixtures;
pub mod http;
pub mod iam;
pub mod load_balancer;
pub mod moto;
pub mod notifications;
pub mod pipeline;
pub mod runtime;
pub mod sandbox;
pub mod sandbox_services;
pub mod standin;
pub mod wait;
pub mod world;
