//! The reflog: one line per ref movement.
//!
//! Line format (shared/FORMAT.md):
//! `<old_id> <new_id> <author> <unix_seconds> <+HHMM>\t<operation>`, with 64
//! zeros for "no predecessor".
//!
//! The reference implementation writes a commit message raw into the
//! operation, so one of its entries may span several physical lines
//! (REFERENCE.md section 8: its c2 entry in the fixture takes five). Readers
//! take a line that is no entry as the continuation of the entry before it,
//! so the message reads back whole, unless it cannot be the reference's
//! text: a line before any entry, a line that starts like an entry (two ids)
//! but does not parse, a line that is not UTF-8 or holds a control
//! character the reference strips (C0 other than tab, DEL, C1). Those are
//! malformed, and so is a run of would-be continuation lines that ends in
//! a malformed line or in a torn tail: the reference never writes damage,
//! so such a run is what a torn append left, and it must not change the
//! message of the entry before it.
//!
//! Invariants: this project writes one physical line per entry (the
//! operation's first line, tabs and carriage returns made spaces, as git
//! does), so a torn tail stays one line; lines are appended through the
//! durable writer (append, then fsync); a torn last line left by a crash is
//! ignored by [`read`] and cut off before the next append, so it never
//! corrupts a later line.

use std::path::Path;

use crate::durable::DurableWriter;
use crate::error::{Error, Result};
use crate::id::{ObjectId, is_lower_hex};

/// One reflog line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReflogEntry {
    /// The ref's previous value ([`ObjectId::ZERO`] when it had none).
    pub old: ObjectId,
    /// Its new value ([`ObjectId::ZERO`] when it was deleted).
    pub new: ObjectId,
    /// Who moved it.
    pub author: String,
    /// When, in seconds since the Unix epoch.
    pub unix_seconds: i64,
    /// The time zone offset as written (`+0000`).
    pub tz: String,
    /// What moved it (`commit: msg`, `checkout: moving from a to b`, ...).
    pub operation: String,
}

impl ReflogEntry {
    /// The line as stored, without its newline: one physical line whatever
    /// the entry holds. The operation keeps its first line only (a commit
    /// message's subject, as git does); tabs and carriage returns become
    /// spaces and other control characters are dropped, in the operation
    /// and in the author (whose spaces stay, as the reference writes them:
    /// `Ann Example <ann@example.com>`).
    #[must_use]
    pub fn to_line(&self) -> String {
        let clean = |text: &str| -> String {
            text.chars()
                .filter_map(|c| match c {
                    '\t' | '\r' => Some(' '),
                    c if c.is_control() => None,
                    c => Some(c),
                })
                .collect()
        };
        let author = clean(self.author.lines().next().unwrap_or_default());
        let author = if author.trim().is_empty() {
            "unknown".to_owned()
        } else {
            author
        };
        let operation = clean(self.operation.lines().next().unwrap_or_default());
        format!(
            "{} {} {} {} {}\t{}",
            self.old, self.new, author, self.unix_seconds, self.tz, operation
        )
    }

    /// Parses one line (without its newline); `None` if it is malformed.
    #[must_use]
    pub fn parse(line: &str) -> Option<Self> {
        let (head, operation) = line.split_once('\t')?;
        let mut fields: Vec<&str> = head.split(' ').collect();
        if fields.len() < 5 {
            return None;
        }
        let tz = fields.pop()?;
        let unix_seconds = fields.pop()?.parse().ok()?;
        let old = ObjectId::from_hex(fields.first()?).ok()?;
        let new = ObjectId::from_hex(fields.get(1)?).ok()?;
        let author = fields[2..].join(" ");
        let tz_ok = tz.len() == 5
            && matches!(tz.as_bytes()[0], b'+' | b'-')
            && tz.as_bytes()[1..].iter().all(u8::is_ascii_digit);
        if !tz_ok {
            return None;
        }
        Some(Self {
            old,
            new,
            author,
            unix_seconds,
            tz: tz.to_owned(),
            operation: operation.to_owned(),
        })
    }
}

/// What [`Reflog::read`] found.
#[derive(Debug, Default, Clone)]
pub struct Reflog {
    /// The complete, well-formed lines in order.
    pub entries: Vec<ReflogEntry>,
    /// Complete lines that did not parse (1-based line numbers).
    pub malformed: Vec<usize>,
    /// Whether the file ended in a torn (incomplete) line, which was ignored.
    pub torn_tail: bool,
    /// With a torn tail, where the damage a torn append left begins: the
    /// torn line, and the would-be continuation lines just before it that
    /// were reported malformed. The next append cuts the file here, so what
    /// the reader called damage never turns into an entry's message body.
    tail_damage_start: Option<u64>,
}

impl Reflog {
    /// Reads the reflog file at `path` (empty when missing).
    pub fn read(path: &Path) -> Result<Reflog> {
        read(path)
    }
}

/// Reads the reflog at `path` (empty when missing).
fn read(path: &Path) -> Result<Reflog> {
    // Never followed nor blocked on; a directory, symlink or FIFO here is
    // damage naming the path.
    let bytes = match crate::files::read_stored(path)? {
        crate::files::Stored::Bytes(b) => b,
        crate::files::Stored::Absent => return Ok(Reflog::default()),
        crate::files::Stored::Directory => {
            return Err(Error::corrupt(
                path,
                "a reflog must be a regular file, and this is a directory",
            ));
        }
    };
    let mut log = Reflog::default();
    let complete = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(pos) => &bytes[..=pos],
        None => &bytes[..0],
    };
    log.torn_tail = complete.len() != bytes.len();
    let Some(body) = complete.strip_suffix(b"\n") else {
        log.tail_damage_start = log.torn_tail.then_some(0);
        return Ok(log);
    };
    // Continuation lines wait in `pending` until the group they extend is
    // closed by the next entry or the end of a cleanly ended file. A crash
    // that tears an append can leave garbage holding newlines after the last
    // entry; its first lines may happen to look like message text (an empty
    // line, say), but the group then runs into a malformed line or the torn
    // tail, and the whole run is reported as damage instead of being glued to
    // the message of an entry that was acknowledged whole.
    let mut pending: Vec<(usize, &str, u64)> = Vec::new();
    let mut in_group = false;
    let mut offset = 0u64;
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        let start = offset;
        offset += line.len() as u64 + 1;
        let text = std::str::from_utf8(line).ok();
        if let Some(entry) = text.and_then(ReflogEntry::parse) {
            extend_last(&mut log, &mut pending);
            log.entries.push(entry);
            in_group = true;
            continue;
        }
        match text {
            Some(text) if in_group && is_continuation(text) => pending.push((i + 1, text, start)),
            _ => {
                log.malformed.extend(pending.drain(..).map(|(n, ..)| n));
                log.malformed.push(i + 1);
                in_group = false;
            }
        }
    }
    if log.torn_tail {
        log.tail_damage_start = Some(pending.first().map_or(complete.len() as u64, |p| p.2));
        log.malformed.extend(pending.drain(..).map(|(n, ..)| n));
    } else {
        extend_last(&mut log, &mut pending);
    }
    Ok(log)
}

/// Appends the `pending` continuation lines to the last entry's operation.
fn extend_last(log: &mut Reflog, pending: &mut Vec<(usize, &str, u64)>) {
    if let Some(last) = log.entries.last_mut() {
        for (_, text, _) in pending.drain(..) {
            last.operation.push('\n');
            last.operation.push_str(text);
        }
    }
    pending.clear();
}

/// Whether `line` (which is no entry) can be a line of a message the
/// reference wrote raw into the entry before it: it does not start like an
/// entry (two ids and a space) and holds no character the reference strips
/// from messages (C0 controls other than tab, DEL, C1 controls).
fn is_continuation(line: &str) -> bool {
    let bytes = line.as_bytes();
    let starts_like_entry = bytes.len() > 130
        && is_lower_hex(&bytes[..64])
        && bytes[64] == b' '
        && is_lower_hex(&bytes[65..129])
        && bytes[129] == b' ';
    !starts_like_entry && !line.chars().any(|c| c != '\t' && c.is_control())
}

/// Appends `entry` to the reflog at `path`, durably. A torn tail is cut
/// first, with the lines [`read`] counts as part of it (see
/// `Reflog::tail_damage_start`); the whole file is read only then.
pub(crate) fn append(writer: &DurableWriter, path: &Path, entry: &ReflogEntry) -> Result<()> {
    let cut = match crate::durable::torn_tail_start(path).map_err(|e| Error::io("read", path, e))? {
        Some(_) => read(path)?.tail_damage_start,
        None => None,
    };
    let mut line = entry.to_line();
    line.push('\n');
    writer.append(path, cut, line.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_muse_lines() {
        let line = "0000000000000000000000000000000000000000000000000000000000000000 43b79123ddbd7b6f7483ff12982ea04f6d88bfafba7b031e4631415568a680ae unknown 1795379295 +0000\tcommit: initial import";
        let entry = ReflogEntry::parse(line).expect("fixture line parses");
        assert_eq!(entry.old, ObjectId::ZERO);
        assert_eq!(entry.author, "unknown");
        assert_eq!(entry.operation, "commit: initial import");
        assert_eq!(entry.to_line(), line);
        assert!(ReflogEntry::parse("garbage").is_none());
        assert!(ReflogEntry::parse(&line[..100]).is_none());
    }

    #[test]
    fn multi_line_entries_read_whole_and_write_one_line() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "/tmp", e))?;
        let path = dir.path().join("HEAD");
        let zeros = ObjectId::ZERO;
        let a = ObjectId::hash(b"a");
        let message = "commit: c2: subject\n\nBody: \u{fc}\n\ttabbed line\n";
        let text = format!(
            "{zeros} {a} Ann Example <ann@example.com> 1767225780 +0000\t{message}\n{a} {a} user 1 +0000\tcheckout: x\n"
        );
        #[expect(
            clippy::disallowed_methods,
            reason = "test plants a reference-written log"
        )]
        std::fs::write(&path, text).map_err(|e| Error::io("write", &path, e))?;
        let log = read(&path)?;
        assert!(log.malformed.is_empty(), "{:?}", log.malformed);
        assert_eq!(log.entries.len(), 2);
        assert_eq!(log.entries[0].operation, message, "the whole message");
        assert_eq!(log.entries[0].author, "Ann Example <ann@example.com>");
        assert_eq!(log.entries[1].operation, "checkout: x");
        let line = log.entries[0].to_line();
        assert!(!line.contains('\n'), "one physical line: {line:?}");
        assert!(line.ends_with("\tcommit: c2: subject"), "{line:?}");
        assert!(line.contains(" Ann Example <ann@example.com> "), "{line:?}");
        Ok(())
    }

    #[test]
    fn lines_that_cannot_be_a_message_are_malformed() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "/tmp", e))?;
        let path = dir.path().join("HEAD");
        let a = ObjectId::hash(b"a");
        let text = format!(
            "before any entry\n{a} {a} me 1 +0000\tcommit: x\nbody line\n{a} {a} me 2 +0000\tcommit: y\nits body\n{a} {a} me x +0000\tbad seconds\nafter damage\nnul\u{0}here\n"
        );
        #[expect(clippy::disallowed_methods, reason = "test plants a damaged log")]
        std::fs::write(&path, text).map_err(|e| Error::io("write", &path, e))?;
        let log = read(&path)?;
        assert_eq!(log.malformed, vec![1, 5, 6, 7, 8]);
        assert_eq!(log.entries.len(), 2);
        assert_eq!(log.entries[0].operation, "commit: x\nbody line");
        assert_eq!(
            log.entries[1].operation, "commit: y",
            "a run that ends in damage is damage, not the message's body"
        );
        Ok(())
    }

    /// The power-cut suite's seed 1796356945931281396: a torn append left
    /// garbage that began with a newline after an acknowledged entry, and
    /// the empty line it made was read as the end of that entry's message.
    #[test]
    fn garbage_a_torn_append_left_never_extends_the_entry_before() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "/tmp", e))?;
        let path = dir.path().join("logs/HEAD");
        let writer = DurableWriter::new(
            std::sync::Arc::new(crate::durable::RealFs),
            crate::durable::Durability::None,
        );
        let entry = |n: u8| ReflogEntry {
            old: ObjectId::ZERO,
            new: ObjectId::hash(&[n]),
            author: "me".into(),
            unix_seconds: 1,
            tz: "+0000".into(),
            operation: format!("commit: {n}"),
        };
        append(&writer, &path, &entry(1))?;
        for garbage in [
            &b"\n\x16Z\xff\x10o\n\x1e$\xc7"[..],
            b"\n",
            b"\ntext that looks like a message\n and more",
            b"\n\n\x00\x00\n",
        ] {
            let mut bytes = entry(1).to_line().into_bytes();
            bytes.push(b'\n');
            bytes.extend_from_slice(garbage);
            #[expect(clippy::disallowed_methods, reason = "test plants a torn log")]
            std::fs::write(&path, &bytes).map_err(|e| Error::io("write", &path, e))?;
            let log = read(&path)?;
            let seen = String::from_utf8_lossy(garbage).into_owned();
            if garbage == b"\n" {
                // Indistinguishable from the reference's message that ends
                // in a newline, and the same bytes the suite never produces:
                // its garbage fills the whole appended line.
                continue;
            }
            assert_eq!(log.entries, vec![entry(1)], "garbage {seen:?}");
            assert!(!log.malformed.is_empty() || log.torn_tail, "{seen:?}");
            append(&writer, &path, &entry(3))?;
            let log = read(&path)?;
            assert_eq!(log.entries, vec![entry(1), entry(3)], "garbage {seen:?}");
        }
        // A log whose first append was torn holds no newline at all.
        #[expect(clippy::disallowed_methods, reason = "test plants a torn log")]
        std::fs::write(&path, [0u8; 150]).map_err(|e| Error::io("write", &path, e))?;
        append(&writer, &path, &entry(3))?;
        let log = read(&path)?;
        assert_eq!(log.entries, vec![entry(3)]);
        assert!(log.malformed.is_empty() && !log.torn_tail);
        Ok(())
    }

    #[test]
    fn torn_tail_is_ignored_and_cut_before_append() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "/tmp", e))?;
        let path = dir.path().join("logs/HEAD");
        let writer = DurableWriter::new(
            std::sync::Arc::new(crate::durable::RealFs),
            crate::durable::Durability::None,
        );
        let entry = |n: u8| ReflogEntry {
            old: ObjectId::ZERO,
            new: ObjectId::hash(&[n]),
            author: "me".into(),
            unix_seconds: 1,
            tz: "+0000".into(),
            operation: format!("commit: {n}"),
        };
        append(&writer, &path, &entry(1))?;
        // A crash tore the second line half-way.
        let torn = entry(2).to_line();
        writer.append(&path, None, &torn.as_bytes()[..70])?;
        let log = read(&path)?;
        assert_eq!(log.entries, vec![entry(1)], "torn line must be ignored");
        assert!(log.torn_tail);
        append(&writer, &path, &entry(3))?;
        let log = read(&path)?;
        assert_eq!(
            log.entries,
            vec![entry(1), entry(3)],
            "append must cut the torn tail"
        );
        assert!(!log.torn_tail && log.malformed.is_empty());
        Ok(())
    }
}
