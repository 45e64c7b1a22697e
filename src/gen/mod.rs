//! Synthetic flow traffic with planted events and their ground truth, for the demo, tests and benchmarks.

pub mod demo;
pub mod plant;
pub mod rng;
pub mod traffic;
