//! Coordination files: reservations (`coordination/reservations/<uuid>.json`)
//! and intents (`coordination/intents/<uuid>.json`), one file each.
//!
//! Invariants: a file's name is the canonical (lowercase, hyphenated) form of
//! the uuid4 it holds, and a file whose stored id disagrees with its name is
//! corrupt; listings skip temp files and anything not named `<uuid>.json`;
//! timestamps are Python `isoformat()` text and must parse.

use std::io;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::repo::Repository;

/// The `schema_version` this implementation writes into coordination files.
const SCHEMA_VERSION: u32 = 1;

fn default_schema_version() -> serde_json::Value {
    serde_json::Value::from(SCHEMA_VERSION)
}

/// A claim on some addresses of a branch by one run, until it expires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    /// The format version of this file (kept as written).
    #[serde(default = "default_schema_version")]
    pub schema_version: serde_json::Value,
    /// A uuid4; also the file's name.
    pub reservation_id: Uuid,
    /// The run (agent session) holding the reservation.
    pub run_id: String,
    /// The branch it applies to.
    pub branch: String,
    /// What is reserved (paths, symbols: whatever the domain addresses).
    pub addresses: Vec<String>,
    /// When it was made (ISO-8601).
    pub created_at: String,
    /// When it lapses (ISO-8601); one hour after `created_at` by default.
    pub expires_at: String,
    /// The operation it is for, if said.
    #[serde(default)]
    pub operation: Option<String>,
    /// Fields written by other tools, kept as they are.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Reservation {
    /// How long a reservation lasts unless told otherwise: one hour.
    pub const DEFAULT_TTL_SECONDS: i64 = 3600;

    /// A new reservation with a fresh uuid4, made now and expiring in
    /// [`Reservation::DEFAULT_TTL_SECONDS`]. Nothing is written yet.
    #[must_use]
    pub fn new(
        run_id: impl Into<String>,
        branch: impl Into<String>,
        addresses: Vec<String>,
        operation: Option<String>,
    ) -> Self {
        let now = Timestamp::now();
        Self {
            schema_version: default_schema_version(),
            reservation_id: Uuid::new_v4(),
            run_id: run_id.into(),
            branch: branch.into(),
            addresses,
            created_at: now.to_isoformat(),
            expires_at: now.plus_seconds(Self::DEFAULT_TTL_SECONDS).to_isoformat(),
            operation,
            extra: serde_json::Map::new(),
        }
    }

    /// Sets the expiry to `seconds` after `created_at`.
    #[must_use]
    pub fn with_ttl_seconds(mut self, seconds: i64) -> Self {
        if let Some(created) = Timestamp::parse_isoformat(&self.created_at) {
            self.expires_at = created.plus_seconds(seconds).to_isoformat();
        }
        self
    }

    /// Makes a new reservation ([`Reservation::new`]) and writes it.
    pub fn create(
        repo: &Repository,
        run_id: impl Into<String>,
        branch: impl Into<String>,
        addresses: Vec<String>,
        operation: Option<String>,
    ) -> Result<Self> {
        let reservation = Self::new(run_id, branch, addresses, operation);
        reservation.write(repo)?;
        Ok(reservation)
    }

    /// Writes this reservation to `coordination/reservations/<id>.json`.
    pub fn write(&self, repo: &Repository) -> Result<()> {
        check_fields("run id", &self.run_id, "branch", &self.branch)?;
        check_time("created_at", &self.created_at)?;
        check_time("expires_at", &self.expires_at)?;
        let path = repo.layout().reservation_path(&self.reservation_id);
        super::write_json(repo.writer(), &path, self)
    }

    /// Reads the reservation `id`; `None` when there is none.
    pub fn read(repo: &Repository, id: &Uuid) -> Result<Option<Self>> {
        read_one(&repo.layout().reservation_path(id), id)
    }

    /// Every reservation, oldest first (expired ones included; see
    /// [`Reservation::is_expired_at`]).
    pub fn list(repo: &Repository) -> Result<Vec<Self>> {
        let mut all: Vec<Self> = list_dir(&repo.layout().reservations_dir())?;
        all.sort_by(|a, b| {
            (parsed(&a.created_at), a.reservation_id)
                .cmp(&(parsed(&b.created_at), b.reservation_id))
        });
        Ok(all)
    }

    /// Removes the reservation `id` (no error when it is already gone).
    pub fn remove(repo: &Repository, id: &Uuid) -> Result<()> {
        repo.writer()
            .remove_file(&repo.layout().reservation_path(id))?;
        Ok(())
    }

    /// When the reservation lapses, if `expires_at` parses.
    #[must_use]
    pub fn expires(&self) -> Option<Timestamp> {
        Timestamp::parse_isoformat(&self.expires_at)
    }

    /// Whether the reservation has lapsed at `now`. An expiry that does not
    /// parse counts as lapsed, so a damaged claim never blocks anyone.
    #[must_use]
    pub fn is_expired_at(&self, now: Timestamp) -> bool {
        self.expires().is_none_or(|expires| expires <= now)
    }

    /// Whether the reservation has lapsed now.
    #[must_use]
    pub fn is_expired(&self) -> bool {
        self.is_expired_at(Timestamp::now())
    }
}

/// A declared plan to perform an operation, usually under a reservation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    /// The format version of this file (kept as written).
    #[serde(default = "default_schema_version")]
    pub schema_version: serde_json::Value,
    /// A uuid4; also the file's name.
    pub intent_id: Uuid,
    /// The reservation it acts under, if any.
    #[serde(default)]
    pub reservation_id: Option<String>,
    /// The run (agent session) declaring it.
    pub run_id: String,
    /// The branch it applies to.
    pub branch: String,
    /// What it will touch.
    pub addresses: Vec<String>,
    /// The operation it announces.
    #[serde(default)]
    pub operation: String,
    /// When it was declared (ISO-8601).
    pub created_at: String,
    /// Free-form detail (text or structured), kept as written.
    #[serde(default)]
    pub detail: serde_json::Value,
    /// Fields written by other tools, kept as they are.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Intent {
    /// A new intent with a fresh uuid4, declared now, under no reservation
    /// and with no detail. Nothing is written yet.
    #[must_use]
    pub fn new(
        run_id: impl Into<String>,
        branch: impl Into<String>,
        addresses: Vec<String>,
        operation: impl Into<String>,
    ) -> Self {
        Self {
            schema_version: default_schema_version(),
            intent_id: Uuid::new_v4(),
            reservation_id: None,
            run_id: run_id.into(),
            branch: branch.into(),
            addresses,
            operation: operation.into(),
            created_at: Timestamp::now().to_isoformat(),
            detail: serde_json::Value::Null,
            extra: serde_json::Map::new(),
        }
    }

    /// A new intent acting under `reservation` (same run, branch and
    /// addresses).
    #[must_use]
    pub fn under(reservation: &Reservation, operation: impl Into<String>) -> Self {
        let mut intent = Self::new(
            reservation.run_id.clone(),
            reservation.branch.clone(),
            reservation.addresses.clone(),
            operation,
        );
        intent.reservation_id = Some(reservation.reservation_id.hyphenated().to_string());
        intent
    }

    /// Writes this intent to `coordination/intents/<id>.json`.
    pub fn write(&self, repo: &Repository) -> Result<()> {
        check_fields("run id", &self.run_id, "branch", &self.branch)?;
        check_time("created_at", &self.created_at)?;
        let path = repo.layout().intent_path(&self.intent_id);
        super::write_json(repo.writer(), &path, self)
    }

    /// Reads the intent `id`; `None` when there is none.
    pub fn read(repo: &Repository, id: &Uuid) -> Result<Option<Self>> {
        read_one(&repo.layout().intent_path(id), id)
    }

    /// Every intent, oldest first.
    pub fn list(repo: &Repository) -> Result<Vec<Self>> {
        let mut all: Vec<Self> = list_dir(&repo.layout().intents_dir())?;
        all.sort_by(|a, b| {
            (parsed(&a.created_at), a.intent_id).cmp(&(parsed(&b.created_at), b.intent_id))
        });
        Ok(all)
    }

    /// Removes the intent `id` (no error when it is already gone).
    pub fn remove(repo: &Repository, id: &Uuid) -> Result<()> {
        repo.writer().remove_file(&repo.layout().intent_path(id))?;
        Ok(())
    }
}

/// What every coordination file shares: an id that must match its name and
/// timestamps that must parse.
trait CoordinationFile: DeserializeOwned {
    fn id(&self) -> &Uuid;
    fn times(&self) -> Vec<(&'static str, &str)>;
}

impl CoordinationFile for Reservation {
    fn id(&self) -> &Uuid {
        &self.reservation_id
    }
    fn times(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("created_at", &self.created_at),
            ("expires_at", &self.expires_at),
        ]
    }
}

impl CoordinationFile for Intent {
    fn id(&self) -> &Uuid {
        &self.intent_id
    }
    fn times(&self) -> Vec<(&'static str, &str)> {
        vec![("created_at", &self.created_at)]
    }
}

fn parsed(time: &str) -> Option<Timestamp> {
    Timestamp::parse_isoformat(time)
}

fn read_one<T: CoordinationFile>(path: &Path, expected: &Uuid) -> Result<Option<T>> {
    let Some(value) = super::read_json::<T>(path)? else {
        return Ok(None);
    };
    if value.id() != expected {
        return Err(Error::corrupt(
            path,
            format!("it holds id {} but is named for {expected}", value.id()),
        ));
    }
    for (field, time) in value.times() {
        if parsed(time).is_none() {
            return Err(Error::corrupt(
                path,
                format!("{field} '{time}' is not an ISO-8601 time with an offset"),
            ));
        }
    }
    Ok(Some(value))
}

/// Reads every `<uuid>.json` in `dir` (a missing directory holds none).
fn list_dir<T: CoordinationFile>(dir: &Path) -> Result<Vec<T>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(id_from_file_name) else {
            continue; // temp files, editor droppings, anything not ours
        };
        // Removed between the listing and the read: it simply is not there.
        if let Some(value) = read_one(&entry.path(), &id)? {
            found.push(value);
        }
    }
    Ok(found)
}

/// The id named by `<uuid>.json` in canonical form, or `None`.
fn id_from_file_name(name: &str) -> Option<Uuid> {
    let stem = name.strip_suffix(".json")?;
    let id = Uuid::parse_str(stem).ok()?;
    (id.hyphenated().to_string() == stem).then_some(id)
}

fn check_fields(what_a: &'static str, a: &str, what_b: &'static str, b: &str) -> Result<()> {
    crate::name::check_plain_text(what_a, a)?;
    Ok(crate::name::check_plain_text(what_b, b)?)
}

fn check_time(field: &'static str, time: &str) -> Result<()> {
    if parsed(time).is_none() {
        return Err(crate::error::InvalidName::new(
            field,
            time,
            "not an ISO-8601 time with an offset",
        )
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::testutil::{TestResult, fault_matrix, repo};

    #[test]
    fn reservation_round_trip_and_expiry() -> TestResult {
        let (_dir, repo) = repo()?;
        let r = Reservation::create(
            &repo,
            "run-1",
            "main",
            vec!["src/a.rs".into()],
            Some("edit".into()),
        )?;
        assert_eq!(r.reservation_id.get_version_num(), 4, "uuid4");
        let back = Reservation::read(&repo, &r.reservation_id)?;
        assert_eq!(back.as_ref(), Some(&r), "round trip");
        let created = Timestamp::parse_isoformat(&r.created_at).ok_or("created_at")?;
        assert_eq!(
            r.expires(),
            Some(created.plus_seconds(3600)),
            "default expiry one hour later"
        );
        assert!(!r.is_expired(), "fresh reservation is live");
        assert!(
            r.is_expired_at(created.plus_seconds(3600)),
            "lapses at expiry"
        );
        let short = Reservation::new("run-2", "main", vec![], None).with_ttl_seconds(-1);
        short.write(&repo)?;
        assert!(short.is_expired(), "negative ttl is already expired");
        let name = format!("{}.json", r.reservation_id);
        assert!(
            repo.layout().reservations_dir().join(&name).is_file(),
            "file named <uuid>.json"
        );
        let value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(repo.layout().reservations_dir().join(name))?)?;
        let keys: Vec<_> = value.as_object().ok_or("object")?.keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "schema_version",
                "reservation_id",
                "run_id",
                "branch",
                "addresses",
                "created_at",
                "expires_at",
                "operation"
            ],
            "FORMAT.md fields"
        );
        Reservation::remove(&repo, &r.reservation_id)?;
        assert_eq!(
            Reservation::read(&repo, &r.reservation_id)?,
            None,
            "removed"
        );
        assert_eq!(Reservation::list(&repo)?, vec![short], "one left");
        Ok(())
    }

    #[test]
    fn intent_round_trip() -> TestResult {
        let (_dir, repo) = repo()?;
        assert!(Intent::list(&repo)?.is_empty(), "no directory, no intents");
        let r = Reservation::new("run-1", "main", vec!["a".into()], None);
        let mut intent = Intent::under(&r, "commit");
        intent.detail = serde_json::json!({"message": "wip"});
        intent.write(&repo)?;
        assert_eq!(
            Intent::read(&repo, &intent.intent_id)?.as_ref(),
            Some(&intent)
        );
        assert_eq!(Intent::list(&repo)?, vec![intent.clone()]);
        assert_eq!(
            intent.reservation_id,
            Some(r.reservation_id.to_string()),
            "links its reservation"
        );
        Intent::remove(&repo, &intent.intent_id)?;
        assert!(Intent::list(&repo)?.is_empty());
        Ok(())
    }

    #[test]
    fn listing_skips_temp_and_foreign_names() -> TestResult {
        let (_dir, repo) = repo()?;
        let r = Reservation::create(&repo, "run", "main", vec![], None)?;
        let dir = repo.layout().reservations_dir();
        let w = repo.writer();
        w.write_file(
            &dir.join(".muse-tmp-abc"),
            crate::durable::TempKind::State,
            b"{",
        )?;
        w.write_file(
            &dir.join("notes.txt"),
            crate::durable::TempKind::State,
            b"hi",
        )?;
        w.write_file(
            &dir.join(format!(
                "{}.json",
                r.reservation_id.to_string().to_uppercase()
            )),
            crate::durable::TempKind::State,
            b"{",
        )?;
        w.write_file(&dir.join("zzz.json"), crate::durable::TempKind::State, b"{")?;
        assert_eq!(Reservation::list(&repo)?, vec![r], "only <uuid>.json files");
        Ok(())
    }

    #[test]
    fn malformed_files_name_the_file() -> TestResult {
        let (_dir, repo) = repo()?;
        let r = Reservation::create(&repo, "run", "main", vec![], None)?;
        let path = repo.layout().reservation_path(&r.reservation_id);
        let other = Reservation::new("run", "main", vec![], None);
        let mut bad_time = r.clone();
        bad_time.expires_at = "tomorrow".into();
        for bytes in [
            b"{\"reservation_id\": 1}".to_vec(),
            serde_json::to_vec(&other)?,
            serde_json::to_vec(&bad_time)?,
        ] {
            repo.writer()
                .write_file(&path, crate::durable::TempKind::State, &bytes)?;
            for err in [
                Reservation::read(&repo, &r.reservation_id).err(),
                Reservation::list(&repo).err(),
            ] {
                let err = err.ok_or("malformed file was accepted")?;
                assert!(
                    err.to_string().contains(&r.reservation_id.to_string()),
                    "names the file: {err}"
                );
            }
        }
        let mut bad = Reservation::new("run", "main", vec![], None);
        bad.run_id = "a\nb".into();
        assert!(bad.write(&repo).is_err(), "control characters refused");
        Ok(())
    }

    #[test]
    fn twenty_concurrent_reservations_give_twenty_files() -> TestResult {
        let (_dir, repo) = repo()?;
        let repo = Arc::new(repo);
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let repo = Arc::clone(&repo);
                std::thread::spawn(move || {
                    Reservation::create(
                        &repo,
                        format!("run-{i}"),
                        "main",
                        vec![format!("f{i}")],
                        None,
                    )
                })
            })
            .collect();
        let mut made = Vec::new();
        for handle in handles {
            made.push(handle.join().map_err(|_| "thread panicked")??);
        }
        let listed = Reservation::list(&repo)?;
        assert_eq!(listed.len(), 20, "20 valid files");
        for r in &made {
            assert!(listed.contains(r), "{} listed", r.reservation_id);
        }
        let files = std::fs::read_dir(repo.layout().reservations_dir())?.count();
        assert_eq!(files, 20, "nothing else in the directory");
        Ok(())
    }

    #[test]
    fn injected_failures_leave_no_temp() -> TestResult {
        let old = Reservation::new("run", "main", vec!["old".into()], None);
        let mut new = old.clone();
        new.addresses = vec!["new".into()];
        fault_matrix(
            &|repo| old.write(repo),
            &|repo| new.write(repo),
            &|repo, err| {
                let now = Reservation::read(repo, &old.reservation_id)?;
                match err {
                    Some(crate::Error::Write(crate::durable::WriteError::NotDurable {
                        ..
                    }))
                    | None => {
                        assert_eq!(now.as_ref(), Some(&new), "new content after the rename");
                    }
                    Some(_) => assert_eq!(now.as_ref(), Some(&old), "old content intact"),
                }
                Ok(())
            },
        )?;
        // A first reservation creates the directories too.
        let fresh = Reservation::new("run", "main", vec![], None);
        fault_matrix(&|_| Ok(()), &|repo| fresh.write(repo), &|repo, err| {
            let now = Reservation::read(repo, &fresh.reservation_id)?;
            if err.is_none() {
                assert_eq!(now.as_ref(), Some(&fresh), "written");
            }
            Ok(())
        })
    }
}
