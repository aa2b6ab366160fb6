//! Journals of multi-ref transactions: `.muse/ref-transactions/<id>.json`
//! (extension), present only while one is being applied. The one reader and
//! writer of that format.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::RefChange;
use crate::durable::{DurableWriter, TempKind};
use crate::error::{Error, Result};
use crate::files::{self, Entry};
use crate::layout::Layout;

/// What a pending transaction is about to do (written durably before the
/// first ref moves, removed after the last).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Journal {
    pub(crate) transaction_id: String,
    pub(crate) pid: u32,
    pub(crate) host: String,
    pub(crate) created_at: String,
    pub(crate) message: String,
    pub(crate) author: String,
    pub(crate) changes: Vec<RefChange>,
}

impl Journal {
    /// The journal files in `layout` (temp files skipped), sorted.
    pub(crate) fn list(layout: &Layout) -> Result<Vec<PathBuf>> {
        let mut paths: Vec<PathBuf> = files::list_records(&layout.transactions_dir())?
            .into_iter()
            .filter_map(|entry| match entry {
                Entry::Item(_, path) | Entry::Stray(path) => path
                    .extension()
                    .is_some_and(|e| e == "json")
                    .then_some(path),
                Entry::Temp(_) => None,
            })
            .collect();
        paths.sort();
        Ok(paths)
    }

    /// Reads the journal at `path`; `None` when it is gone (its transaction
    /// finished meanwhile).
    pub(crate) fn read(path: &Path) -> Result<Option<Self>> {
        let Some(bytes) = files::read_optional(path)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::corrupt(path, format!("ref transaction journal: {e}")))
    }

    /// Writes this journal durably; returns its path.
    pub(crate) fn write(&self, layout: &Layout, writer: &DurableWriter) -> Result<PathBuf> {
        let path = layout
            .transactions_dir()
            .join(format!("{}.json", self.transaction_id));
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::corrupt(&path, format!("cannot serialise the journal: {e}")))?;
        writer.write_file(&path, TempKind::State, &bytes)?;
        Ok(path)
    }
}
