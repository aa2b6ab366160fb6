//! The reference implementation's contract, case by case: every case of
//! shared/vectors/plumbing.json run against a copy of its fixture, and
//! every case of shared/vectors/museignore.json through the one matcher.
//!
//! For each plumbing case the exit code, stdout and the files it changed
//! are compared with what the reference did: JSON keys, value types and
//! values (extra keys this project adds are allowed, missing or different
//! ones are not), the exact bytes per `stdout_encoding` (Python's
//! `json.dumps`, one line or `indent=2`) when our output has no extra keys,
//! text output byte for byte, and stderr where the reference printed one.
//! The deliberate differences (docs/compatibility.md) are listed here by
//! case name, each with what this project does instead, and checked as
//! strictly. Commands listed in `TRANSPORT` would be skipped by name,
//! counted (none are now).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use muse_store::{IgnoreRules, JsonStyle, python_json};
use serde_json::Value;

use crate::TestResult;
use crate::support::{copy_tree, shared_dir};

/// Commands skipped here (see the module docs).
const TRANSPORT: [&str; 0] = [];

/// Cases whose deviation is a refusal that writes nothing at all.
const WRITES_NOTHING: [&str; 1] = ["unpack-objects have-c1 into empty repo"];

/// The empty blob, which a bundle carries here and the reference drops.
const EMPTY_BLOB: &str =
    ".muse/objects/e3/b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// A deliberate difference: what this project does instead, by case name.
struct Deviation {
    case: &'static str,
    exit: u8,
    /// What stdout must be instead (JSON compared like the reference's).
    stdout: Expect,
    why: &'static str,
}

enum Expect {
    /// Nothing on stdout.
    Empty,
    /// This JSON (keys, types, values; extra keys allowed).
    Json(Value),
    /// A JSON object whose `error` names the integrity check.
    IntegrityError,
    /// A JSON object whose `error` starts with this (the reference's words,
    /// then this project's detail).
    ErrorStartingWith(&'static str),
    /// Exactly this text.
    Text(&'static str),
}

fn deviations(ids: &BTreeMap<String, String>) -> Vec<Deviation> {
    let id = |k: &str| ids.get(k).cloned().unwrap_or_default();
    vec![
        Deviation {
            case: "rev-parse tag name",
            exit: 0,
            stdout: Expect::Json(serde_json::json!({"ref": "v1.0", "commit_id": id("c1")})),
            why: "tags are resolved by the revision syntax (issue 12); the reference's rev-parse does not know tags",
        },
        Deviation {
            case: "rev-parse HEAD~1",
            exit: 0,
            stdout: Expect::Json(serde_json::json!({"ref": "HEAD~1", "commit_id": id("c2")})),
            why: "~N / ^N ancestry steps are an extension; the reference has none",
        },
        Deviation {
            case: "cat-object corrupt object",
            exit: 3,
            stdout: Expect::Empty,
            why: "a stored object that fails its hash check is never served (the reference prints the damaged bytes)",
        },
        Deviation {
            case: "cat-object info corrupt object",
            exit: 3,
            stdout: Expect::IntegrityError,
            why: "info verifies the object too: a damaged one is an integrity error, exit 3",
        },
        Deviation {
            case: "unpack-objects full into empty repo",
            exit: 0,
            stdout: Expect::Json(
                serde_json::json!({"commits_written": 3, "snapshots_written": 3, "objects_written": 15, "objects_skipped": 0}),
            ),
            why: "the empty blob travels (the reference drops it, so its clone lacks empty files)",
        },
        Deviation {
            case: "unpack-objects text",
            exit: 0,
            stdout: Expect::Text("Wrote 3 commits, 3 snapshots, 15 objects (0 skipped).\n"),
            why: "the empty blob travels",
        },
        Deviation {
            case: "unpack-objects into the source repo",
            exit: 0,
            stdout: Expect::Json(
                serde_json::json!({"commits_written": 0, "snapshots_written": 0, "objects_written": 0, "objects_skipped": 15}),
            ),
            why: "the empty blob travels, and is already there",
        },
        Deviation {
            case: "unpack-objects have-c1 into empty repo",
            exit: 1,
            stdout: Expect::ErrorStartingWith("bad bundle (missing): commit "),
            why: "a commit whose parent is neither in the bundle nor in the store is refused, and nothing is stored (the reference stores a commit whose parent it lacks)",
        },
        Deviation {
            case: "unpack-objects garbage",
            exit: 1,
            stdout: Expect::ErrorStartingWith("Invalid msgpack from stdin: "),
            why: "the reference's words, then our decoder's detail (byte offset, what is wrong) instead of Python msgpack's",
        },
        Deviation {
            case: "unpack-objects empty stdin",
            exit: 1,
            stdout: Expect::ErrorStartingWith("Invalid msgpack from stdin: truncated"),
            why: "the reference's words, then our decoder's detail",
        },
        Deviation {
            case: "verify-pack garbage",
            exit: 1,
            stdout: Expect::ErrorStartingWith("Invalid msgpack: "),
            why: "the reference's words, then our decoder's detail",
        },
    ]
}

/// Case names whose error text quotes a library of the reference (Python's
/// `tomllib`): the text after the shared prefix is this project's parser's.
const OWN_PARSER_WORDS: [(&str, &str); 1] = [(
    "check-ignore invalid .museignore",
    ".museignore: TOML parse error — ",
)];

/// Cases whose stderr is a usage text: clap's, not argparse's (the exit code,
/// 2, and the empty stdout are the same).
const USAGE_TEXT: [&str; 1] = ["commit-tree no snapshot arg"];

/// Files that change beside the ones the reference changed, by design:
/// this project logs every ref and HEAD move, and keeps its locks in
/// `.muse/locks/`.
fn ours_only(path: &str) -> bool {
    path.starts_with(".muse/logs/") || path.starts_with(".muse/locks/")
}

fn vectors() -> TestResult<Value> {
    let path = shared_dir().join("vectors/plumbing.json");
    let text = fs::read_to_string(&path)
        .map_err(|e| format!("vectors missing at {}: {e}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// Every file below `root` with its bytes and mode (directories left out).
fn tree(root: &Path) -> TestResult<BTreeMap<String, (Vec<u8>, u32)>> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(root)?.to_string_lossy().into_owned();
                let mode = fs::symlink_metadata(&path)?.permissions().mode() & 0o777;
                out.insert(rel, (fs::read(&path).unwrap_or_default(), mode));
            }
        }
    }
    Ok(out)
}

/// The repository a case runs in, with its setup applied.
fn prepare(case: &Value, scratch: &Path) -> TestResult<PathBuf> {
    let fixture = case["fixture"].as_str().unwrap_or_default();
    let root = scratch.join(fixture);
    match fixture {
        "ref-history" | "ref-rebase-stopped" => {
            copy_tree(&shared_dir().join("fixtures").join(fixture), &root)?;
        }
        "empty-repo" => {
            fs::create_dir_all(&root)?;
            let run = crate::muse(["init", root.to_str().ok_or("path")?]);
            assert_eq!(run.code, 0, "init: {}", run.err);
        }
        "not-a-repo" => fs::create_dir_all(&root)?,
        other => return Err(format!("unknown fixture {other}").into()),
    }
    let name = case["name"].as_str().unwrap_or_default();
    let setup = case["setup"].as_str().unwrap_or_default();
    let museignore = root.join(".museignore");
    match setup {
        "" => {}
        s if s.starts_with("a new file new.txt") => fs::write(root.join("new.txt"), "brand new\n")?,
        s if s.starts_with("the object file of README.md@c4 has one byte changed") => {
            let id = "e87074eb5991658b0b353cd6011dc27000d1d6e5d16989a43bc3c162f534d682";
            let path = root.join(".muse/objects").join(&id[..2]).join(&id[2..]);
            let mut bytes = fs::read(&path)?;
            bytes[0] += 1;
            crate::make_writable(&path)?;
            fs::write(&path, bytes)?;
        }
        s if s.starts_with(".museignore replaced by: ") => fs::write(
            &museignore,
            "[global]\npatterns = [\"*.log\", \"!keep.log\", \"/only-root.txt\", \"logs/\"]\n",
        )?,
        ".museignore replaced by invalid TOML" => {
            fs::write(&museignore, "[global\npatterns = [\n")?;
        }
        s if s.starts_with(".museattributes replaced by two rules") => fs::write(
            root.join(".museattributes"),
            "[meta]\ndomain = \"code\"\n\n[[rules]]\npath = \"*.txt\"\ndimension = \"*\"\nstrategy = \"ours\"\npriority = 10\n\n[[rules]]\npath = \"song.txt\"\ndimension = \"melodic\"\nstrategy = \"theirs\"\n",
        )?,
        "<lambda>" if name.starts_with("hash-object") => fs::write(root.join("x.txt"), "hello\n")?,
        "<lambda>" if name == "check-ignore no .museignore" => fs::remove_file(&museignore)?,
        other => return Err(format!("{name}: unknown setup {other:?}").into()),
    }
    Ok(root)
}

/// Runs the case's argv in `root` (or its `cwd`).
fn run(case: &Value, root: &Path) -> TestResult<(u8, Vec<u8>, String)> {
    let argv: Vec<String> = case["argv"]
        .as_array()
        .ok_or("argv")?
        .iter()
        .map(|a| {
            a.as_str()
                .unwrap_or_default()
                .replace("<shared>", &shared_dir().to_string_lossy())
        })
        .collect();
    let dir = match case["cwd"].as_str() {
        Some(cwd) => root.join(cwd),
        None => root.to_path_buf(),
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_muse"))
        .args(&argv)
        .current_dir(dir)
        .env("MUSE_DURABILITY", "none")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let input = match &case["stdin"] {
        Value::Object(spec) => {
            if let Some(file) = spec.get("file").and_then(Value::as_str) {
                fs::read(shared_dir().join(file))?
            } else if let Some(hex) = spec.get("hex").and_then(Value::as_str) {
                hex::decode(hex)?
            } else {
                spec.get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .as_bytes()
                    .to_vec()
            }
        }
        _ => Vec::new(),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read stdin may close it early.
        let _ = stdin.write_all(&input);
    }
    let out = child.wait_with_output()?;
    let code = out
        .status
        .code()
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or(255);
    Ok((
        code,
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Compares `ours` with the reference's `theirs`: same keys in the same
/// order (ours may have more), same types and values; `"<any>"` matches
/// any string. Returns the first difference.
fn same_json(theirs: &Value, ours: &Value, at: &str) -> Result<(), String> {
    match (theirs, ours) {
        (Value::String(t), Value::String(_)) if t == "<any>" => Ok(()),
        (Value::Object(t), Value::Object(o)) => {
            let mut last = None;
            for (k, tv) in t {
                let Some(pos) = o.keys().position(|ok| ok == k) else {
                    return Err(format!("{at}: key {k:?} missing (ours: {ours})"));
                };
                if last.is_some_and(|l| pos < l) {
                    return Err(format!("{at}: key {k:?} out of the reference's order"));
                }
                last = Some(pos);
                same_json(tv, &o[k], &format!("{at}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(t), Value::Array(o)) => {
            if t.len() != o.len() {
                return Err(format!("{at}: {} items, reference {}", o.len(), t.len()));
            }
            for (i, (tv, ov)) in t.iter().zip(o).enumerate() {
                same_json(tv, ov, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        (t, o) if t == o => Ok(()),
        (t, o) => Err(format!("{at}: ours {o}, reference {t}")),
    }
}

/// Whether `ours` has keys the reference's `theirs` lacks, anywhere.
fn has_extra_keys(theirs: &Value, ours: &Value) -> bool {
    match (theirs, ours) {
        (Value::Object(t), Value::Object(o)) => {
            o.len() != t.len()
                || t.iter()
                    .any(|(k, tv)| o.get(k).is_some_and(|ov| has_extra_keys(tv, ov)))
        }
        (Value::Array(t), Value::Array(o)) => t.iter().zip(o).any(|(a, b)| has_extra_keys(a, b)),
        _ => false,
    }
}

fn style(case: &Value) -> Option<JsonStyle> {
    let enc = case["stdout_encoding"].as_str()?;
    Some(if enc.contains("indent=2") {
        JsonStyle::Indent2
    } else {
        JsonStyle::Line
    })
}

/// Checks stdout against what the reference printed (JSON, text or bytes).
fn check_stdout(case: &Value, theirs: &Value, out: &[u8]) -> Result<(), String> {
    match theirs {
        Value::Object(_) => {
            let ours: Value = serde_json::from_slice(out).map_err(|e| {
                format!(
                    "stdout is not JSON ({e}): {:?}",
                    String::from_utf8_lossy(out)
                )
            })?;
            same_json(theirs, &ours, "stdout")?;
            if let Some(style) = style(case) {
                // Byte for byte as Python prints our value, and as it prints
                // the reference's when we add nothing.
                let printed = python_json(&ours, style).map_err(|e| e.to_string())?;
                if printed != out {
                    return Err(format!(
                        "stdout is not json.dumps bytes: {:?}",
                        String::from_utf8_lossy(out)
                    ));
                }
                if !has_extra_keys(theirs, &ours) && !theirs.to_string().contains("<any>") {
                    let expected = python_json(theirs, style).map_err(|e| e.to_string())?;
                    if expected != out {
                        return Err(format!(
                            "bytes differ: ours {:?}, reference {:?}",
                            String::from_utf8_lossy(out),
                            String::from_utf8_lossy(&expected)
                        ));
                    }
                }
            }
            Ok(())
        }
        Value::String(text) if text == "<any>" => {
            let s = String::from_utf8_lossy(out);
            let id = s.strip_suffix('\n').unwrap_or_default();
            if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(())
            } else {
                Err(format!("stdout {s:?} is not one id and a newline"))
            }
        }
        Value::String(text) => {
            if out == text.as_bytes() {
                Ok(())
            } else {
                Err(format!(
                    "stdout {:?}, reference {text:?}",
                    String::from_utf8_lossy(out)
                ))
            }
        }
        Value::Null if case["stdout_sha256"].is_string() && case["stdout_hex"].is_null() => {
            let sha = muse_store::ObjectId::hash(out).to_hex();
            if Some(sha.as_str()) == case["stdout_sha256"].as_str()
                && out.len() as u64 == case["stdout_len"].as_u64().unwrap_or(0)
            {
                Ok(())
            } else {
                Err(format!(
                    "binary stdout differs: {} bytes, sha256 {sha}",
                    out.len()
                ))
            }
        }
        Value::Null => {
            let hex = hex::encode(out);
            let want = case["stdout_hex"].as_str().unwrap_or_default();
            if hex == want && out.len() as u64 == case["stdout_len"].as_u64().unwrap_or(0) {
                Ok(())
            } else {
                Err(format!("binary stdout differs: {hex}"))
            }
        }
        other => Err(format!("unexpected vector stdout {other}")),
    }
}

/// Checks the files a write command changed, and what it left in them.
#[expect(
    clippy::too_many_lines,
    reason = "one comparison per kind of effect the vectors record"
)]
fn check_writes(
    case: &Value,
    root: &Path,
    before: &BTreeMap<String, (Vec<u8>, u32)>,
    after: &BTreeMap<String, (Vec<u8>, u32)>,
) -> Result<(), String> {
    let name = case["name"].as_str().unwrap_or_default();
    let mut changed: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let ours_only =
        |path: &str| ours_only(path) || (name.starts_with("unpack-objects") && path == EMPTY_BLOB);
    for (path, content) in after {
        if ours_only(path) {
            continue;
        }
        match before.get(path) {
            None => changed.entry("created").or_default().insert(path.clone()),
            Some(old) if old.0 != content.0 => {
                changed.entry("modified").or_default().insert(path.clone())
            }
            _ => false,
        };
    }
    for path in before.keys() {
        if !after.contains_key(path) && !ours_only(path) {
            changed.entry("deleted").or_default().insert(path.clone());
        }
    }
    let mut want: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    if let Some(files) = case["files_changed"].as_object() {
        for (kind, paths) in files {
            let kind = match kind.as_str() {
                "created" => "created",
                "modified" => "modified",
                _ => "deleted",
            };
            for p in paths.as_array().into_iter().flatten() {
                want.entry(kind)
                    .or_default()
                    .insert(p.as_str().unwrap_or_default().to_owned());
            }
        }
    }
    // A new commit record's name depends on the clock.
    let normalise = |set: &mut BTreeMap<&str, BTreeSet<String>>| {
        for paths in set.values_mut() {
            *paths = paths
                .iter()
                .map(|p| {
                    if p.starts_with(".muse/commits/") {
                        ".muse/commits/<any>.json".to_owned()
                    } else {
                        p.clone()
                    }
                })
                .collect();
        }
    };
    normalise(&mut changed);
    normalise(&mut want);
    if changed != want {
        return Err(format!(
            "{name}: files changed {changed:?}, reference {want:?}"
        ));
    }
    let effects = &case["effects"];
    if let Some(effects) = effects.as_object() {
        for (key, value) in effects {
            match key.as_str() {
                "new_commit_record" => {
                    let created = changed
                        .get("created")
                        .and_then(|s| s.iter().next().cloned())
                        .ok_or("no commit record created")?;
                    let file = after
                        .iter()
                        .find(|(p, _)| p.starts_with(".muse/commits/") && !before.contains_key(*p))
                        .ok_or(format!("{created}: not found"))?;
                    let record: Value =
                        serde_json::from_slice(&file.1.0).map_err(|e| e.to_string())?;
                    same_json(value, &record, "new commit record")?;
                }
                "refs_unchanged" => {}
                "object_file_mode" => {
                    // Deliberate: objects are stored read-only (0444).
                    let (_, (_, mode)) = after
                        .iter()
                        .find(|(p, _)| p.starts_with(".muse/objects/") && !before.contains_key(*p))
                        .ok_or("no object created")?;
                    if *mode != 0o444 {
                        return Err(format!("object mode {mode:o}, this project's is 444"));
                    }
                }
                path => {
                    let file = root.join(".muse").join(path);
                    match value {
                        Value::Null => {
                            if file.exists() {
                                return Err(format!("{path} should be gone"));
                            }
                        }
                        Value::String(text) => {
                            let got =
                                fs::read_to_string(&file).map_err(|e| format!("{path}: {e}"))?;
                            if got != *text {
                                return Err(format!("{path}: {got:?}, reference {text:?}"));
                            }
                        }
                        other => return Err(format!("{path}: unexpected effect {other}")),
                    }
                }
            }
        }
    }
    Ok(())
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one pass over the cases, each comparison in the order the vectors give them"
)]
fn every_plumbing_case_of_the_reference() -> TestResult {
    let vectors = vectors()?;
    let ids: BTreeMap<String, String> = serde_json::from_value(vectors["ids"].clone())?;
    let deviations = deviations(&ids);
    let cases = vectors["cases"].as_array().ok_or("cases")?;
    let (mut ran, mut skipped, mut deviated) = (0, BTreeMap::<&str, usize>::new(), 0);
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap_or_default();
        let command = case["argv"][1].as_str().unwrap_or_default();
        if let Some(t) = TRANSPORT.iter().find(|t| **t == command) {
            *skipped.entry(t).or_default() += 1;
            continue;
        }
        let scratch = tempfile::tempdir()?;
        let root = prepare(case, scratch.path())?;
        let before = tree(&root)?;
        let (code, out, err) = run(case, &root)?;
        let after = tree(&root)?;
        ran += 1;
        let mut problems = Vec::new();
        let deviation = deviations.iter().find(|d| d.case == name);
        let want_exit = deviation.map_or_else(
            || u8::try_from(case["exit"].as_u64().unwrap_or(255)).unwrap_or(255),
            |d| d.exit,
        );
        if code != want_exit {
            problems.push(format!(
                "exit {code}, expected {want_exit} (stderr {err:?})"
            ));
        }
        let stdout = match deviation.map(|d| &d.stdout) {
            None => check_stdout(case, &case["stdout"], &out),
            Some(Expect::Empty) if out.is_empty() => Ok(()),
            Some(Expect::Empty) => Err(format!(
                "stdout not empty: {:?}",
                String::from_utf8_lossy(&out)
            )),
            Some(Expect::Json(v)) => check_stdout(case, v, &out),
            Some(Expect::Text(text)) if out == text.as_bytes() => Ok(()),
            Some(Expect::Text(text)) => Err(format!(
                "stdout {:?}, expected {text:?}",
                String::from_utf8_lossy(&out)
            )),
            Some(Expect::ErrorStartingWith(prefix)) => serde_json::from_slice::<Value>(&out)
                .map_err(|e| e.to_string())
                .and_then(|v| match v["error"].as_str() {
                    Some(e) if e.starts_with(prefix) => Ok(()),
                    _ => Err(format!("error does not start with {prefix:?}: {v}")),
                }),
            Some(Expect::IntegrityError) => serde_json::from_slice::<Value>(&out)
                .map_err(|e| e.to_string())
                .and_then(|v| match v["error"].as_str() {
                    Some(e) if e.contains("integrity check") => Ok(()),
                    _ => Err(format!("not an integrity error: {v}")),
                }),
        };
        let own_words = OWN_PARSER_WORDS.iter().find(|(n, _)| *n == name);
        match (stdout, own_words) {
            (Ok(()), _) => {}
            (Err(_), Some((_, prefix))) => {
                // Our parser's words after the reference's prefix.
                let ours: Value = serde_json::from_slice(&out).unwrap_or_default();
                if !ours["error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with(prefix))
                {
                    problems.push(format!("error {ours} does not start with {prefix:?}"));
                }
            }
            (Err(e), None) => problems.push(e),
        }
        if let Some(theirs) = case["stderr"].as_str()
            && deviation.is_none()
            && !USAGE_TEXT.contains(&name)
            && !theirs.starts_with("<python traceback>")
            && err != theirs
        {
            problems.push(format!("stderr {err:?}, reference {theirs:?}"));
        }
        if WRITES_NOTHING.contains(&name) {
            if before != after {
                problems.push("a refused unpack changed the repository".to_owned());
            }
        } else if case["writes"].as_bool() == Some(true) {
            if let Err(e) = check_writes(case, &root, &before, &after) {
                problems.push(e);
            }
        } else if before != after {
            problems.push("a read command changed the repository".to_owned());
        }
        if deviation.is_some() {
            deviated += 1;
        }
        if !problems.is_empty() {
            let why = deviation.map_or(String::new(), |d| format!(" [deviation: {}]", d.why));
            failures.push(format!(
                "{name} ({:?}){why}:\n    {}",
                case["argv"],
                problems.join("\n    ")
            ));
        }
    }
    let skipped_total: usize = skipped.values().sum();
    eprintln!(
        "plumbing vectors: {ran} cases run ({deviated} with a documented deviation), {skipped_total} transport cases skipped {skipped:?}"
    );
    assert_eq!(
        ran + skipped_total,
        cases.len(),
        "every case is run or skipped by name"
    );
    assert_eq!(
        deviated,
        deviations.len(),
        "every listed deviation names a case that exists"
    );
    assert!(
        failures.is_empty(),
        "{} of {ran} cases differ from the reference:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}

#[test]
fn every_museignore_case_of_the_reference() -> TestResult {
    let path = shared_dir().join("vectors/museignore.json");
    let vectors: Value = serde_json::from_str(&fs::read_to_string(&path)?)?;
    let cases = vectors["cases"].as_array().ok_or("cases")?;
    let mut failures = Vec::new();
    for case in cases {
        let patterns: Vec<&str> = case["patterns"]
            .as_array()
            .ok_or("patterns")?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let path = case["path"].as_str().ok_or("path")?;
        let want = case["ignored"].as_bool().ok_or("ignored")?;
        if IgnoreRules::new(&patterns).is_ignored(path) != want {
            failures.push(format!(
                "[{}] {patterns:?} {path:?}: reference says ignored={want}",
                case["group"]
            ));
        }
    }
    assert!(cases.len() >= 150, "{} cases", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    Ok(())
}
