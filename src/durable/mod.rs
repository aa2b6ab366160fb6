//! Durable writes: the filesystem seam and the one writer that goes through it.
//!
//! Nothing else in the crate creates, replaces, renames or removes a
//! repository file (clippy.toml's `disallowed-methods` enforces it).

mod fault;
mod sim;
mod vfs;
mod writer;

pub use fault::{FaultFs, Op, OpKind};
pub use sim::{CutSummary, SimFs, Survivors, TEAR_GRANULE};
pub use vfs::{RealFs, Vfs, VfsFile};
pub use writer::{
    Durability, DurableWriter, Staged, TempKind, WriteBatch, WriteError, WriteStep, torn_tail_start,
};
