//! Transport: `PackBundle`s (the reference's wire format) and receiving them
//! through a quarantine.
//!
//! A bundle leaves a repository through [`pack`] and enters one through
//! [`unpack`], which checks everything it receives before anything is
//! stored (docs/transport.md lists the checks and their order).

mod bundle;
mod msgpack;
mod quarantine;
mod remote;

pub use bundle::{PackCounts, RECORD_LIMIT, VerifyReport, commits_to_send, pack, verify};
pub use quarantine::{Unpacked, unpack};
pub use remote::{
    FetchOptions, Fetched, LocalTransport, PushOptions, PushUpdate, Transport, clone, clone_with,
    fetch, fetch_from, fetch_with, open_configured, push, remote_path,
};
