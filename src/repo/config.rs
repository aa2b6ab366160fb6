//! `config.toml`: the user's identity and the remotes, edited in place.
//!
//! Invariants:
//! - edits keep everything they do not touch byte for byte: comments,
//!   blank lines, key order, quoting, unknown sections (a format-preserving
//!   editor, `toml_edit`, parses and re-renders the document);
//! - every read-modify-write holds `config.toml.lock`, created exclusively,
//!   so concurrent setters (threads or processes) are serialised and none is
//!   lost; the lock (the same lock file the refs use)
//!   is released on every path, and one left by a process that is provably
//!   dead (same host, pid gone) is recovered;
//! - the new content is written through the durable writer (temp file, fsync,
//!   rename), so a reader sees the old file or the new one.

use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item, Table, TableLike, Value};

use super::Repository;
use crate::durable::{DEFAULT_LOCK_TIMEOUT, FileLock, TempKind};
use crate::error::{Error, InvalidName, Result};
use crate::files;
use crate::layout::Layout;
use crate::name::{check_plain_text, validate_remote_name};

/// The keys [`Config::set`] accepts.
const SETTABLE: [&str; 3] = ["user.name", "user.email", "user.type"];

/// One configured remote (`[remotes.<name>]`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Remote {
    /// Its name.
    pub name: String,
    /// Where it is.
    pub url: String,
    /// The branch it tracks, if set.
    pub branch: Option<String>,
}

/// A parsed `config.toml` (a snapshot: [`Repository::config`] holds the one
/// read at open; the setters re-read the file under the lock).
#[derive(Debug, Clone)]
pub struct Config {
    path: PathBuf,
    doc: DocumentMut,
}

impl Config {
    /// Reads `config.toml` (an absent file reads as empty).
    pub(crate) fn read(layout: &Layout) -> Result<Self> {
        let path = layout.config();
        let doc = parse(&path)?;
        Ok(Self { path, doc })
    }

    /// The string at a dotted `key` (`user.name`, `hub.url`, or
    /// `remotes.<name>.url` where the remote's name may itself contain dots).
    /// `None` when absent or not a string.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<String> {
        if let Some(rest) = key.strip_prefix("remotes.") {
            let (name, field) = rest.rsplit_once('.')?;
            let remote = self.doc.get("remotes")?.as_table_like()?.get(name)?;
            return remote
                .as_table_like()?
                .get(field)?
                .as_str()
                .map(str::to_owned);
        }
        let mut parts = key.split('.');
        let mut item = self.doc.get(parts.next()?)?;
        for part in parts {
            item = item.as_table_like()?.get(part)?;
        }
        item.as_str().map(str::to_owned)
    }

    /// `user.name`, if set.
    #[must_use]
    pub fn user_name(&self) -> Option<String> {
        self.get("user.name")
    }

    /// `user.email`, if set.
    #[must_use]
    pub fn user_email(&self) -> Option<String> {
        self.get("user.email")
    }

    /// Every remote, in file order. A `[remotes.<name>]` entry that is not a
    /// table with a string `url` is reported as corrupt.
    pub fn remotes(&self) -> Result<Vec<Remote>> {
        let Some(remotes) = self.doc.get("remotes") else {
            return Ok(Vec::new());
        };
        let remotes = remotes
            .as_table_like()
            .ok_or_else(|| Error::corrupt(&self.path, "'remotes' is not a table"))?;
        remotes
            .iter()
            .map(|(name, item)| remote_from(&self.path, name, item))
            .collect()
    }

    /// The remote `name`, if configured.
    pub fn remote(&self, name: &str) -> Result<Option<Remote>> {
        Ok(self.remotes()?.into_iter().find(|r| r.name == name))
    }

    /// Sets `key` (one of `user.name`, `user.email`, `user.type`) to `value`,
    /// keeping the rest of the file, and any comment after the old value, as
    /// they are.
    pub fn set(repo: &Repository, key: &str, value: &str) -> Result<()> {
        let Some((section, field)) = SETTABLE
            .contains(&key)
            .then(|| key.split_once('.'))
            .flatten()
        else {
            return Err(InvalidName::new(
                "config key",
                key,
                "settable keys are user.name, user.email, user.type",
            )
            .into());
        };
        if value.chars().any(char::is_control) {
            return Err(
                InvalidName::new("config value", value, "it contains a control character").into(),
            );
        }
        update(repo, |doc, path| {
            let table = section_mut(doc, path, section)?;
            match table.get_mut(field).and_then(Item::as_value_mut) {
                Some(old) => {
                    // Keep the spacing and trailing comment of the old value.
                    let decor = old.decor().clone();
                    *old = Value::from(value);
                    *old.decor_mut() = decor;
                }
                None => {
                    table.insert(field, toml_edit::value(value));
                }
            }
            Ok(())
        })
    }

    /// Adds the remote `name` at `url`, tracking `branch` if given. Refuses a
    /// name that is already configured.
    pub fn add_remote(
        repo: &Repository,
        name: &str,
        url: &str,
        branch: Option<&str>,
    ) -> Result<()> {
        validate_remote_name(name)?;
        check_plain_text("remote url", url)?;
        if let Some(branch) = branch {
            check_plain_text("branch", branch)?;
        }
        update(repo, |doc, path| {
            let remotes = remotes_mut(doc, path)?;
            if remotes.contains_key(name) {
                return Err(Error::RemoteExists {
                    name: name.to_owned(),
                });
            }
            let mut table = Table::new();
            table.insert("url", toml_edit::value(url));
            if let Some(branch) = branch {
                table.insert("branch", toml_edit::value(branch));
            }
            // A new table has no position, so it is rendered right after the
            // tables before it in the document: after `[remotes]` and the
            // remotes already there, not at the end of the file.
            remotes.insert(name, Item::Table(table));
            Ok(())
        })
    }

    /// Sets the branch the remote `name` tracks (`branch = "<b>"` under
    /// `[remotes.<name>]`, as the reference's `push -u` writes it).
    pub fn set_remote_branch(repo: &Repository, name: &str, branch: &str) -> Result<()> {
        check_plain_text("branch", branch)?;
        update(repo, |doc, path| {
            let remotes = remotes_mut(doc, path)?;
            let table = remotes
                .get_mut(name)
                .and_then(Item::as_table_like_mut)
                .ok_or_else(|| Error::NoSuchRemote {
                    name: name.to_owned(),
                })?;
            table.insert("branch", toml_edit::value(branch));
            Ok(())
        })
    }

    /// Removes the remote `name`.
    pub fn remove_remote(repo: &Repository, name: &str) -> Result<()> {
        update(repo, |doc, path| {
            let remotes = remotes_mut(doc, path)?;
            if remotes.remove(name).is_none() {
                return Err(Error::NoSuchRemote {
                    name: name.to_owned(),
                });
            }
            Ok(())
        })
    }
}

fn remote_from(path: &Path, name: &str, item: &Item) -> Result<Remote> {
    let bad = |what: &str| Error::corrupt(path, format!("remote '{name}' {what}"));
    let table = item.as_table_like().ok_or_else(|| bad("is not a table"))?;
    let url = table
        .get("url")
        .and_then(Item::as_str)
        .ok_or_else(|| bad("has no string 'url'"))?;
    let branch = match table.get("branch") {
        None => None,
        Some(b) => Some(
            b.as_str()
                .ok_or_else(|| bad("has a 'branch' that is not a string"))?,
        ),
    };
    Ok(Remote {
        name: name.to_owned(),
        url: url.to_owned(),
        branch: branch.map(str::to_owned),
    })
}

/// Parses `config.toml` at `path` (absent reads as empty).
fn parse(path: &Path) -> Result<DocumentMut> {
    let bytes = files::read_optional(path)?.unwrap_or_default();
    let text =
        String::from_utf8(bytes).map_err(|e| Error::corrupt(path, format!("not UTF-8: {e}")))?;
    text.parse::<DocumentMut>()
        .map_err(|e| Error::corrupt(path, format!("not valid TOML: {e}")))
}

/// The table `[section]`, created when absent.
fn section_mut<'d>(
    doc: &'d mut DocumentMut,
    path: &Path,
    section: &str,
) -> Result<&'d mut dyn TableLike> {
    doc.entry(section)
        .or_insert_with(|| Item::Table(Table::new()))
        .as_table_like_mut()
        .ok_or_else(|| Error::corrupt(path, format!("'{section}' is not a table")))
}

/// The `remotes` table, created (as an implicit table, so no empty
/// `[remotes]` header appears) when absent.
fn remotes_mut<'d>(doc: &'d mut DocumentMut, path: &Path) -> Result<&'d mut dyn TableLike> {
    doc.entry("remotes")
        .or_insert_with(|| {
            let mut table = Table::new();
            table.set_implicit(true);
            Item::Table(table)
        })
        .as_table_like_mut()
        .ok_or_else(|| Error::corrupt(path, "'remotes' is not a table"))
}

/// Read-modify-write of `config.toml` under its lock.
fn update(
    repo: &Repository,
    edit: impl FnOnce(&mut DocumentMut, &Path) -> Result<()>,
) -> Result<()> {
    let lock = FileLock::acquire(&repo.layout().config_lock(), DEFAULT_LOCK_TIMEOUT, None)?;
    let path = repo.layout().config();
    let mut doc = parse(&path)?;
    edit(&mut doc, &path)?;
    repo.writer()
        .write_file(&path, TempKind::State, doc.to_string().as_bytes())?;
    Ok(lock.release()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{TestResult, fault_matrix, fixture, repo};

    #[test]
    fn default_config_get_set_round_trip() -> TestResult {
        let (_dir, repo) = repo()?;
        let before = std::fs::read_to_string(repo.layout().config())?;
        let config = Config::read(repo.layout())?;
        assert_eq!(config.user_name().as_deref(), Some(""));
        assert!(config.remotes()?.is_empty());
        Config::set(&repo, "user.name", "Ada Lovelace")?;
        Config::set(&repo, "user.email", "ada@example.org")?;
        Config::set(&repo, "user.type", "agent")?;
        let config = Config::read(repo.layout())?;
        assert_eq!(config.user_name().as_deref(), Some("Ada Lovelace"));
        assert_eq!(config.user_email().as_deref(), Some("ada@example.org"));
        let after = std::fs::read_to_string(repo.layout().config())?;
        assert!(
            after.contains("type = \"agent\"    # \"human\" | \"agent\""),
            "trailing comment kept: {after}"
        );
        assert_eq!(
            after
                .replace("Ada Lovelace", "")
                .replace("ada@example.org", "")
                .replace("agent\"  ", "human\"  "),
            before,
            "nothing else changed"
        );
        assert!(!repo.layout().config_lock().exists(), "lock released");
        for bad in ["user", "user.nick", "core.editor", ""] {
            assert!(
                matches!(Config::set(&repo, bad, "x"), Err(Error::InvalidName { .. })),
                "{bad:?} refused"
            );
        }
        assert!(
            Config::set(&repo, "user.name", "a\nb").is_err(),
            "newline refused"
        );
        Ok(())
    }

    #[test]
    fn remotes_add_list_remove() -> TestResult {
        let (_dir, repo) = repo()?;
        Config::add_remote(&repo, "origin", "https://example.org/r.git", None)?;
        Config::add_remote(&repo, "up.stream", "/srv/repo", Some("dev"))?;
        let remotes = Config::read(repo.layout())?.remotes()?;
        assert_eq!(
            remotes,
            vec![
                Remote {
                    name: "origin".into(),
                    url: "https://example.org/r.git".into(),
                    branch: None
                },
                Remote {
                    name: "up.stream".into(),
                    url: "/srv/repo".into(),
                    branch: Some("dev".into())
                },
            ]
        );
        let config = Config::read(repo.layout())?;
        assert_eq!(
            config.get("remotes.up.stream.branch").as_deref(),
            Some("dev")
        );
        assert!(matches!(
            Config::add_remote(&repo, "origin", "x", None),
            Err(Error::RemoteExists { .. })
        ));
        let text = std::fs::read_to_string(repo.layout().config())?;
        let remotes_at = text.find("[remotes]").ok_or("no [remotes]")?;
        let origin_at = text.find("[remotes.origin]").ok_or("no [remotes.origin]")?;
        let domain_at = text.find("[domain]").ok_or("no [domain]")?;
        assert!(
            remotes_at < origin_at && origin_at < domain_at,
            "new remote sits under [remotes], not after [domain]: {text}"
        );
        Config::remove_remote(&repo, "origin")?;
        assert!(matches!(
            Config::remove_remote(&repo, "origin"),
            Err(Error::NoSuchRemote { .. })
        ));
        assert_eq!(Config::read(repo.layout())?.remotes()?.len(), 1);
        Ok(())
    }

    #[test]
    fn fixture_config_parses_and_keeps_comments() -> TestResult {
        let (_dir, repo) = fixture("muse-merge-conflict")?;
        let before = std::fs::read_to_string(repo.layout().config())?;
        let config = Config::read(repo.layout())?;
        assert_eq!(config.user_name().as_deref(), Some(""));
        assert_eq!(config.get("user.type").as_deref(), Some("human"));
        assert!(config.remotes()?.is_empty());
        Config::set(&repo, "user.name", "Grace")?;
        Config::add_remote(&repo, "origin", "https://musehub.ai/x", Some("main"))?;
        let after = std::fs::read_to_string(repo.layout().config())?;
        for line in before.lines().filter(|l| l.trim_start().starts_with('#')) {
            assert!(after.contains(line), "comment {line:?} survives:\n{after}");
        }
        assert_eq!(
            Config::read(repo.layout())?.user_name().as_deref(),
            Some("Grace")
        );
        Config::remove_remote(&repo, "origin")?;
        Config::set(&repo, "user.name", "")?;
        assert_eq!(
            std::fs::read_to_string(repo.layout().config())?,
            before,
            "undoing the edits restores the file byte for byte"
        );
        Ok(())
    }

    #[test]
    fn malformed_config_names_the_file() -> TestResult {
        let (_dir, repo) = repo()?;
        let path = repo.layout().config();
        for bad in [
            &b"[user\nname = 1"[..],
            b"remotes = 5",
            b"[remotes.origin]\nurl = 5",
            b"\xff",
        ] {
            repo.writer().write_file(&path, TempKind::State, bad)?;
            let err = Config::read(repo.layout())
                .and_then(|c| c.remotes())
                .err()
                .or_else(|| Config::add_remote(&repo, "x", "y", None).err())
                .ok_or("malformed config accepted")?;
            assert!(
                err.to_string().contains("config.toml"),
                "names the file: {err}"
            );
            assert!(
                !repo.layout().config_lock().exists(),
                "lock released on error"
            );
        }
        Ok(())
    }

    #[test]
    fn ten_concurrent_remote_adds_lose_nothing() -> TestResult {
        let (_dir, repo) = fixture("muse-merge-conflict")?;
        let before = std::fs::read_to_string(repo.layout().config())?;
        let root = repo.work_tree().to_path_buf();
        let handles: Vec<_> = (0..10)
            .map(|i| {
                let root = root.clone();
                std::thread::spawn(move || -> Result<()> {
                    // Each thread has its own handle, as separate processes would.
                    let repo = Repository::open(&root)?;
                    Config::add_remote(&repo, &format!("r{i}"), &format!("https://h/{i}"), None)
                })
            })
            .collect();
        for handle in handles {
            handle.join().map_err(|_| "thread panicked")??;
        }
        let mut names: Vec<_> = Config::read(repo.layout())?
            .remotes()?
            .into_iter()
            .map(|r| r.name)
            .collect();
        names.sort();
        let expected: Vec<_> = (0..10).map(|i| format!("r{i}")).collect();
        assert_eq!(names, expected, "all 10 remotes present");
        let after = std::fs::read_to_string(repo.layout().config())?;
        for line in before.lines().filter(|l| l.trim_start().starts_with('#')) {
            assert!(after.contains(line), "comment {line:?} survives");
        }
        assert!(!repo.layout().config_lock().exists(), "lock released");
        Ok(())
    }

    #[test]
    fn lock_left_by_a_dead_process_is_taken_and_a_live_one_waited_for() -> TestResult {
        let (_dir, repo) = repo()?;
        let lock = repo.layout().config_lock();
        // The file a holder that died leaves: nothing holds its flock.
        let dead = crate::durable::LockOwner {
            pid: 999_999_999,
            host: crate::durable::host_name(),
            created_at: "2026-01-01T00:00:00+00:00".into(),
            nonce: "dead".into(),
            intent: None,
        };
        repo.writer()
            .write_file(&lock, TempKind::State, &serde_json::to_vec(&dead)?)?;
        Config::set(&repo, "user.name", "after recovery")?;
        assert!(!lock.exists(), "taken then released");

        // A live holder (this process) on another thread: the setter waits.
        let held = FileLock::acquire(&lock, DEFAULT_LOCK_TIMEOUT, None)?;
        let root = repo.work_tree().to_path_buf();
        let waiter = std::thread::spawn(move || -> Result<()> {
            Config::set(&Repository::open(&root)?, "user.name", "waited")
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(
            Config::read(repo.layout())?.user_name().as_deref(),
            Some("after recovery")
        );
        drop(held);
        waiter.join().map_err(|_| "thread panicked")??;
        assert_eq!(
            Config::read(repo.layout())?.user_name().as_deref(),
            Some("waited")
        );
        Ok(())
    }

    #[test]
    fn injected_failures_leave_old_content_no_temp_and_no_lock() -> TestResult {
        fault_matrix(
            &|repo| Config::add_remote(repo, "old", "u", None),
            &|repo| Config::add_remote(repo, "new", "u", None),
            &|repo, err| {
                let names: Vec<_> = Config::read(repo.layout())?
                    .remotes()?
                    .into_iter()
                    .map(|r| r.name)
                    .collect();
                let lock_left = repo.layout().config_lock().exists();
                match err {
                    None => {
                        assert_eq!(names, ["old", "new"], "added");
                        assert!(!lock_left, "lock released");
                    }
                    Some(Error::Write(crate::durable::WriteError::NotDurable { .. })) => {
                        assert_eq!(names, ["old", "new"], "added, not known durable");
                        assert!(!lock_left, "lock released");
                    }
                    Some(e) => {
                        // Only a failed unlink of the lock itself can leave it
                        // behind, and then the write already happened and the
                        // error says so.
                        if lock_left {
                            assert!(e.to_string().contains("config.toml.lock"), "{e}");
                            assert_eq!(names, ["old", "new"], "written before the unlink");
                        } else {
                            assert_eq!(names, ["old"], "old content intact: {e}");
                        }
                    }
                }
                Ok(())
            },
        )
    }
}
