//! Repository health: what is reachable, what is wrong (`fsck`), and what
//! can go (`gc`).

mod foreign;
mod fsck;
mod gc;
mod problem;
mod reach;
mod root;

pub use fsck::{Counts, FsckReport, fsck};
pub use gc::{DEFAULT_PRUNE_AGE, GcOptions, GcReport, Removed, gc, parse_prune_age};
pub use problem::{Problem, ProblemKind, Severity};
