//! The op log: `op_log/<session_id>/ops.jsonl` (append-only, one JSON object
//! per line) and `op_log/<session_id>/checkpoint.json`.
//!
//! Invariants:
//! - a line is appended whole and fsynced before `append` returns;
//! - a crash can leave a torn last line (no final `\n`); readers ignore it
//!   and the next append first cuts the file back to its last `\n`, so a new
//!   record never glues onto a torn one;
//! - a power cut during an append can also leave its region filled with
//!   garbage (the length reached the disk, the data did not), newlines
//!   included. Every acknowledged line was fsynced, so such debris is only
//!   ever at the end: readers ignore a trailing run of lines that do not
//!   parse, and the next append cuts it off first. A line that does not
//!   parse *before* a good one is corruption and an error;
//! - a session has one appender at a time (the session is one actor); two
//!   concurrent appenders to one session could cut each other's line while
//!   repairing a torn tail.

use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::durable::DurableWriter;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::name::SessionId;
use crate::repo::Repository;

/// One line of `ops.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpEntry {
    /// This operation's id (a uuid4 when made by [`OpEntry::new`]).
    pub op_id: String,
    /// Who performed it.
    pub actor_id: String,
    /// Lamport timestamp ordering it among the session's operations.
    pub lamport_ts: u64,
    /// The operations it causally follows.
    #[serde(default)]
    pub parent_op_ids: Vec<String>,
    /// The domain plugin that interprets `domain_op`.
    pub domain: String,
    /// The operation itself, as the domain encodes it.
    #[serde(default)]
    pub domain_op: serde_json::Value,
    /// When it was recorded (ISO-8601).
    pub created_at: String,
    /// The intent it carries out, if any.
    #[serde(default)]
    pub intent_id: Option<String>,
    /// The reservation it acts under, if any.
    #[serde(default)]
    pub reservation_id: Option<String>,
    /// Fields written by other tools, kept as they are.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl OpEntry {
    /// A new entry with a fresh uuid4 id, recorded now, with no parents,
    /// intent or reservation.
    #[must_use]
    pub fn new(
        actor_id: impl Into<String>,
        lamport_ts: u64,
        domain: impl Into<String>,
        domain_op: serde_json::Value,
    ) -> Self {
        Self {
            op_id: uuid::Uuid::new_v4().to_string(),
            actor_id: actor_id.into(),
            lamport_ts,
            parent_op_ids: Vec::new(),
            domain: domain.into(),
            domain_op,
            created_at: Timestamp::now().to_isoformat(),
            intent_id: None,
            reservation_id: None,
            extra: serde_json::Map::new(),
        }
    }
}

/// `checkpoint.json`: where a session's log was last folded into a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The session it belongs to.
    pub session_id: String,
    /// The snapshot that holds the effect of the first `op_count` operations.
    pub snapshot_id: Option<ObjectId>,
    /// The highest Lamport timestamp folded in.
    pub lamport_ts: u64,
    /// How many operations of `ops.jsonl` are folded in.
    pub op_count: u64,
    /// When it was written (ISO-8601).
    pub created_at: String,
    /// Fields written by other tools, kept as they are.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Checkpoint {
    /// A checkpoint of `session` made now.
    #[must_use]
    pub fn new(
        session: &SessionId,
        snapshot_id: Option<ObjectId>,
        lamport_ts: u64,
        op_count: u64,
    ) -> Self {
        Self {
            session_id: session.to_string(),
            snapshot_id,
            lamport_ts,
            op_count,
            created_at: Timestamp::now().to_isoformat(),
            extra: serde_json::Map::new(),
        }
    }
}

/// The op log of one session.
#[derive(Debug, Clone)]
pub struct OpLog {
    session: SessionId,
    ops: PathBuf,
    checkpoint: PathBuf,
    writer: DurableWriter,
}

impl OpLog {
    /// The op log of `session` in `repo` (nothing is created until the first
    /// write).
    #[must_use]
    pub fn new(repo: &Repository, session: SessionId) -> Self {
        let layout = repo.layout();
        Self {
            ops: layout.ops_path(&session),
            checkpoint: layout.checkpoint_path(&session),
            session,
            writer: repo.writer().clone(),
        }
    }

    /// Every session with an op-log directory, sorted (names that are not
    /// valid session ids are skipped).
    pub fn sessions(repo: &Repository) -> Result<Vec<SessionId>> {
        let dir = repo.layout().op_log_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list", dir, e)),
        };
        let mut sessions = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| SessionId::new(n).ok())
            {
                sessions.push(id);
            }
        }
        sessions.sort();
        Ok(sessions)
    }

    /// The session this log belongs to.
    #[must_use]
    pub fn session(&self) -> &SessionId {
        &self.session
    }

    /// `ops.jsonl`'s path.
    #[must_use]
    pub fn ops_path(&self) -> &Path {
        &self.ops
    }

    /// Appends `entry` as one line and fsyncs it, first cutting off a torn
    /// last line left by a crash.
    pub fn append(&self, entry: &OpEntry) -> Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(|e| {
            Error::corrupt(&self.ops, format!("entry could not be serialised: {e}"))
        })?;
        line.push(b'\n');
        // Debris (unparseable complete lines) ends before any torn tail.
        let cut = match (torn_tail_cut(&self.ops)?, debris_cut(&self.ops)?) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.writer.append(&self.ops, cut, &line)?;
        Ok(())
    }

    /// Every complete entry, in file order. A torn last line (no final `\n`)
    /// and a trailing run of lines that do not parse (debris of a power cut
    /// during the last append) are ignored; a line that does not parse
    /// followed by one that does is an error naming the file and the line.
    pub fn read(&self) -> Result<Vec<OpEntry>> {
        let Some(bytes) = crate::files::read_optional(&self.ops)? else {
            return Ok(Vec::new());
        };
        let complete = bytes
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(&[][..], |last| &bytes[..=last]);
        if complete.len() < bytes.len() {
            log::debug!(
                "ignoring a torn last line ({} bytes) in '{}'",
                bytes.len() - complete.len(),
                self.ops.display()
            );
        }
        let mut entries = Vec::new();
        let mut bad: Option<(usize, serde_json::Error)> = None;
        for (index, line) in complete.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice(line) {
                Ok(entry) => {
                    if let Some((bad_index, e)) = bad {
                        return Err(Error::corrupt(
                            &self.ops,
                            format!("line {} is not an op entry: {e}", bad_index + 1),
                        ));
                    }
                    entries.push(entry);
                }
                Err(e) => {
                    bad.get_or_insert((index, e));
                }
            }
        }
        if let Some((index, _)) = bad {
            log::debug!(
                "ignoring unparseable lines from line {} on in '{}' (debris of a crash)",
                index + 1,
                self.ops.display()
            );
        }
        Ok(entries)
    }

    /// Writes `checkpoint.json` (atomically replacing the previous one). Its
    /// `session_id` must be this log's session.
    pub fn write_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        if checkpoint.session_id != self.session.as_str() {
            return Err(crate::error::InvalidName::new(
                "checkpoint session id",
                &checkpoint.session_id,
                "it is not the session this op log belongs to",
            )
            .into());
        }
        super::write_json(&self.writer, &self.checkpoint, checkpoint)
    }

    /// Reads `checkpoint.json`; `None` when there is none.
    pub fn read_checkpoint(&self) -> Result<Option<Checkpoint>> {
        super::read_json(&self.checkpoint)
    }
}

/// The length to cut `path` back to so that a trailing run of complete lines
/// that do not parse as op entries (debris of a power cut) goes:
/// `Some(len)` when there is such a run, `None` otherwise. Only the last
/// 64 KiB are examined (debris is one unacknowledged append).
fn debris_cut(path: &Path) -> Result<Option<u64>> {
    const WINDOW: u64 = 64 * 1024;
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", path, e)),
    };
    let io_err = |e| Error::io("read", path, e);
    let len = file.metadata().map_err(io_err)?.len();
    let start = len.saturating_sub(WINDOW);
    let mut window = vec![0u8; (len - start) as usize];
    file.seek(SeekFrom::Start(start)).map_err(io_err)?;
    file.read_exact(&mut window).map_err(io_err)?;
    // The end of the last complete line.
    let Some(mut end) = window.iter().rposition(|&b| b == b'\n').map(|p| p + 1) else {
        return Ok(None);
    };
    let complete_end = end;
    // Blank lines are skipped, as the reader skips them: they neither end
    // the debris nor are debris themselves. Cut at the first bad line after
    // the last good one.
    let mut cut = complete_end;
    while end > 0 {
        let body = &window[..end - 1];
        let line_start = match body.iter().rposition(|&b| b == b'\n') {
            Some(p) => p + 1,
            // The line may begin before the window: treat it as good.
            None if start > 0 => break,
            None => 0,
        };
        let line = &body[line_start..];
        if !line.iter().all(u8::is_ascii_whitespace) {
            if serde_json::from_slice::<OpEntry>(line).is_ok() {
                break;
            }
            cut = line_start;
        }
        end = line_start;
    }
    Ok((cut < complete_end).then_some(start + cut as u64))
}

/// The length to cut `path` back to before appending: `Some(len)` up to and
/// including its last `\n` when bytes follow it (a torn line), `None` when
/// the file is absent or ends cleanly. Reads backwards from the end in
/// blocks, so the cost does not grow with the log.
fn torn_tail_cut(path: &Path) -> Result<Option<u64>> {
    const BLOCK: u64 = 8192;
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", path, e)),
    };
    let io_err = |e| Error::io("read", path, e);
    let len = file.metadata().map_err(io_err)?.len();
    let mut end = len;
    let mut buf = vec![0u8; BLOCK as usize];
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start)).map_err(io_err)?;
        file.read_exact(chunk).map_err(io_err)?;
        if let Some(pos) = chunk.iter().rposition(|&b| b == b'\n') {
            let valid = start + pos as u64 + 1;
            return Ok((valid < len).then_some(valid));
        }
        end = start;
    }
    // No newline at all: the whole file is one torn line.
    Ok((len > 0).then_some(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durable::OpKind;
    use crate::testutil::{TestResult, fault_matrix, repo};

    fn session() -> Result<SessionId> {
        Ok(SessionId::new("session-1")?)
    }

    fn entry(n: u64) -> OpEntry {
        let mut e = OpEntry::new(
            "agent-a",
            n,
            "code",
            serde_json::json!({"op": "insert", "n": n}),
        );
        e.parent_op_ids = vec![format!("parent-{n}")];
        // Fixed id and time, so two calls give equal entries.
        e.op_id = format!("op-{n}");
        e.created_at = "2026-01-01T00:00:00+00:00".into();
        e
    }

    #[test]
    fn session_ids_are_single_safe_components() {
        for good in ["s1", "2026-01-01T00-00", "a.b", "séance"] {
            assert!(SessionId::new(good).is_ok(), "{good:?} accepted");
        }
        for bad in [
            "", ".", "..", ".hidden", "a/b", "../x", "a..b", "a\\b", "a\0b", "a\nb",
        ] {
            let err = SessionId::new(bad).err();
            assert!(
                err.as_ref().is_some_and(|e| e.what == "session id"),
                "{bad:?} refused: {err:?}"
            );
        }
        assert!(SessionId::new("x".repeat(256)).is_err(), "too long refused");
    }

    #[test]
    fn append_and_read_round_trip() -> TestResult {
        let (_dir, repo) = repo()?;
        let log = OpLog::new(&repo, session()?);
        assert!(log.read()?.is_empty(), "absent log is empty");
        let entries: Vec<_> = (1..=3).map(entry).collect();
        for e in &entries {
            log.append(e)?;
        }
        assert_eq!(log.read()?, entries, "round trip");
        let text = std::fs::read_to_string(log.ops_path())?;
        assert_eq!(text.lines().count(), 3, "one line each");
        assert!(text.ends_with('\n'), "ends with a newline");
        assert_eq!(OpLog::sessions(&repo)?, vec![session()?]);
        Ok(())
    }

    #[test]
    fn torn_tail_is_ignored_then_cut() -> TestResult {
        let (_dir, repo) = repo()?;
        let log = OpLog::new(&repo, session()?);
        log.append(&entry(1))?;
        log.append(&entry(2))?;
        // A crash in the middle of the third append.
        let torn = serde_json::to_vec(&entry(3))?;
        repo.writer()
            .append(log.ops_path(), None, &torn[..torn.len() / 2])?;
        assert_eq!(log.read()?, vec![entry(1), entry(2)], "torn tail ignored");
        log.append(&entry(4))?;
        assert_eq!(
            log.read()?,
            vec![entry(1), entry(2), entry(4)],
            "torn tail cut"
        );
        let text = std::fs::read_to_string(log.ops_path())?;
        assert_eq!(text.lines().count(), 3, "no glued line: {text}");

        // A file that is nothing but a torn line.
        let other = OpLog::new(&repo, SessionId::new("session-2")?);
        repo.writer()
            .append(other.ops_path(), None, b"{\"op_id\": ")?;
        assert!(other.read()?.is_empty(), "only a torn line");
        other.append(&entry(5))?;
        assert_eq!(other.read()?, vec![entry(5)]);

        // A torn tail longer than one read block.
        let big = OpLog::new(&repo, SessionId::new("session-3")?);
        big.append(&entry(6))?;
        repo.writer()
            .append(big.ops_path(), None, &vec![b'x'; 20_000])?;
        big.append(&entry(7))?;
        assert_eq!(big.read()?, vec![entry(6), entry(7)]);
        Ok(())
    }

    #[test]
    fn trailing_debris_of_a_power_cut_is_ignored_then_cut() -> TestResult {
        let (_dir, repo) = repo()?;
        let log = OpLog::new(&repo, session()?);
        log.append(&entry(1))?;
        // An append whose region a power cut filled with garbage, newlines
        // included, and a torn tail after it.
        repo.writer()
            .append(log.ops_path(), None, b"\x07garbage\n{\"op\n\x00\x00")?;
        assert_eq!(log.read()?, vec![entry(1)], "debris ignored");
        log.append(&entry(2))?;
        assert_eq!(log.read()?, vec![entry(1), entry(2)], "debris cut");
        let text = std::fs::read_to_string(log.ops_path())?;
        assert_eq!(text.lines().count(), 2, "{text}");
        Ok(())
    }

    /// Found by the `state_files` fuzz target: debris with blank lines around
    /// it (`"\n\xff\n\n"`) was read as empty but not cut, so the next append
    /// followed a bad line and the log became unreadable.
    #[test]
    fn debris_between_blank_lines_is_cut_too() -> TestResult {
        let (_dir, repo) = repo()?;
        let log = OpLog::new(&repo, session()?);
        repo.writer().append(log.ops_path(), None, b"\n\xff\n\n")?;
        assert_eq!(log.read()?, Vec::new(), "debris ignored");
        log.append(&entry(1))?;
        assert_eq!(log.read()?, vec![entry(1)], "debris cut, log readable");
        log.append(&entry(2))?;
        repo.writer()
            .append(log.ops_path(), None, b"\n\n{bad\n\n")?;
        log.append(&entry(3))?;
        assert_eq!(log.read()?, vec![entry(1), entry(2), entry(3)]);
        Ok(())
    }

    #[test]
    fn malformed_line_names_the_file() -> TestResult {
        let (_dir, repo) = repo()?;
        let log = OpLog::new(&repo, session()?);
        log.append(&entry(1))?;
        repo.writer().append(log.ops_path(), None, b"not json\n")?;
        let mut good = serde_json::to_vec(&entry(2))?;
        good.push(b'\n');
        repo.writer().append(log.ops_path(), None, &good)?;
        let err = log.read().err().ok_or("malformed line accepted")?;
        let text = err.to_string();
        assert!(
            text.contains("ops.jsonl") && text.contains("line 2"),
            "{text}"
        );

        repo.writer().write_file(
            &repo.layout().checkpoint_path(&session()?),
            crate::durable::TempKind::State,
            b"[]",
        )?;
        let err = log
            .read_checkpoint()
            .err()
            .ok_or("malformed checkpoint accepted")?;
        assert!(err.to_string().contains("checkpoint.json"), "{err}");
        Ok(())
    }

    #[test]
    fn checkpoint_round_trip() -> TestResult {
        let (_dir, repo) = repo()?;
        let log = OpLog::new(&repo, session()?);
        assert_eq!(log.read_checkpoint()?, None);
        let cp = Checkpoint::new(log.session(), Some(ObjectId::EMPTY), 7, 3);
        log.write_checkpoint(&cp)?;
        assert_eq!(log.read_checkpoint()?, Some(cp));
        let wrong = Checkpoint::new(&SessionId::new("other")?, None, 1, 1);
        assert!(log.write_checkpoint(&wrong).is_err(), "session must match");
        Ok(())
    }

    #[test]
    fn injected_failures_leave_no_temp_and_no_half_line() -> TestResult {
        fault_matrix(
            &|repo| OpLog::new(repo, session()?).append(&entry(1)),
            &|repo| OpLog::new(repo, session()?).append(&entry(2)),
            &|repo, err| {
                let got = OpLog::new(repo, session()?).read()?;
                // The entry is whole or absent, never half there.
                assert!(
                    got == vec![entry(1)] || got == vec![entry(1), entry(2)],
                    "whole entries only: {got:?}"
                );
                if err.is_none() {
                    assert_eq!(got.len(), 2, "appended");
                }
                Ok(())
            },
        )?;
        let cp = |n| Checkpoint {
            session_id: "session-1".into(),
            snapshot_id: None,
            lamport_ts: n,
            op_count: n,
            created_at: "2026-01-01T00:00:00+00:00".into(),
            extra: serde_json::Map::new(),
        };
        fault_matrix(
            &|repo| OpLog::new(repo, session()?).write_checkpoint(&cp(1)),
            &|repo| OpLog::new(repo, session()?).write_checkpoint(&cp(2)),
            &|repo, err| {
                let now = OpLog::new(repo, session()?).read_checkpoint()?;
                match err {
                    Some(Error::Write(crate::durable::WriteError::NotDurable { .. })) | None => {
                        assert_eq!(now, Some(cp(2)), "new content after the rename");
                    }
                    Some(_) => assert_eq!(now, Some(cp(1)), "old content intact"),
                }
                Ok(())
            },
        )
    }

    #[test]
    fn torn_tail_repair_is_a_truncate_then_write() -> TestResult {
        let (_dir, repo, fault) = crate::testutil::fault_repo()?;
        let log = OpLog::new(&repo, session()?);
        log.append(&entry(1))?;
        repo.writer().append(log.ops_path(), None, b"{\"torn")?;
        fault.clear();
        log.append(&entry(2))?;
        let kinds: Vec<_> = fault.ops().iter().map(|op| op.kind).collect();
        assert_eq!(
            kinds,
            [
                OpKind::OpenAppend,
                OpKind::Truncate,
                OpKind::Write,
                OpKind::SyncFile
            ],
            "cut, append, fsync"
        );
        Ok(())
    }
}
