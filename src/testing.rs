//! Test doubles for the filesystem seam (cargo feature `testing`): a
//! recording, failure-injecting filesystem and a simulated disk that can
//! lose power. Give either to [`Options::vfs`](crate::Options::vfs) to test
//! what code built on this crate does when a write fails or the machine
//! stops.

pub use crate::durable::fault::{FaultFs, Op, OpKind};
pub use crate::durable::host_name;
pub use crate::durable::sim::{CutSummary, SimFs, Survivors, TEAR_GRANULE};
