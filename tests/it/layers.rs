//! The layers of shared/ARCHITECTURE.md, checked against the code: every
//! module names only modules on its own layer or below, and no files import
//! each other in a circle.
//!
//! The check reads `crate::<module>` and `super::<sibling>` paths in every
//! source file (comments and string literals removed first; unit tests, which
//! may build fixtures with anything, left out), so an import that runs up a
//! layer fails here with the file and the line.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::TestResult;

/// Layer of each top-level module of the library, bottom (0) to top; the
/// binary's `cli` (and `main.rs`) sits above all of them.
const LAYERS: &[(&str, u8)] = &[
    ("sys", 0),
    ("id", 0),
    ("clock", 0),
    ("progress", 0),
    ("failpoint", 0),
    ("durable", 1),
    ("testing", 1),
    ("error", 2),
    ("name", 3),
    ("layout", 4),
    ("files", 4),
    ("store", 5),
    ("record", 5),
    ("refs", 5),
    ("repo", 6),
    ("history", 6),
    ("revision", 6),
    ("state", 7),
    ("worktree", 7),
    ("transport", 7),
    ("merge", 7),
    ("porcelain", 8),
    ("maint", 8),
    ("cli", 9),
    ("main", 9),
];

/// Files outside the layer table: the crate root and test-only helpers.
const EXEMPT: &[&str] = &["lib", "testutil"];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// `text` without comments, string literals and char literals (replaced by
/// spaces, so line numbers stay).
fn strip(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        if rest.starts_with(b"//") {
            while i < bytes.len() && bytes[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if rest.starts_with(b"/*") {
            while i < bytes.len() && !bytes[i..].starts_with(b"*/") {
                out.push(if bytes[i] == b'\n' { b'\n' } else { b' ' });
                i += 1;
            }
            i = (i + 2).min(bytes.len());
        } else if rest.starts_with(b"r#\"") || rest.starts_with(b"r\"") {
            let hashes = rest[1..].iter().take_while(|&&b| b == b'#').count();
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            i += 2 + hashes;
            while i < bytes.len() && !bytes[i..].starts_with(&close) {
                out.push(if bytes[i] == b'\n' { b'\n' } else { b' ' });
                i += 1;
            }
            i = (i + close.len()).min(bytes.len());
        } else if bytes[i] == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' {
                    i += 1;
                }
                out.push(if bytes.get(i) == Some(&b'\n') {
                    b'\n'
                } else {
                    b' '
                });
                i += 1;
            }
            i += 1;
        } else if bytes[i] == b'\'' && rest.len() >= 3 && (rest[2] == b'\'' || rest[1] == b'\\') {
            // A char literal ('x' or '\n'); lifetimes ('a) are left alone.
            let end = rest[1..]
                .iter()
                .position(|&b| b == b'\'')
                .map_or(1, |p| p + 2);
            i += end;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn ident_at(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The first path segments named after `prefix` (`crate::` or `super::`)
/// in `code`, with their line numbers; `prefix::{a, b::c}` yields `a` and
/// `b`.
fn named_after(code: &str, prefix: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find(prefix) {
            let before_ok = at == 0
                || !rest[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
            rest = &rest[at + prefix.len()..];
            if !before_ok {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let body = group.split('}').next().unwrap_or_default();
                for item in body.split(',') {
                    let name = ident_at(item.trim());
                    if !name.is_empty() {
                        found.push((n + 1, name.to_owned()));
                    }
                }
            } else {
                let name = ident_at(rest);
                if !name.is_empty() {
                    found.push((n + 1, name.to_owned()));
                }
            }
        }
    }
    found
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> TestResult {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// (top-level module, file within it) of a path relative to `src/`:
/// `store.rs` is (`store`, `store`), `refs/journal.rs` is
/// (`refs`, `journal`), `refs/mod.rs` is (`refs`, `mod`).
fn place(rel: &Path) -> (String, String) {
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    match parts.as_slice() {
        [file] => (file.clone(), file.clone()),
        [module, rest @ ..] => (module.clone(), rest.join("/")),
        [] => (String::new(), String::new()),
    }
}

#[test]
fn no_module_imports_a_module_on_a_higher_layer_and_no_files_form_a_circle() -> TestResult {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files)?;
    files.sort();
    let mut violations = Vec::new();
    // Top-level module -> the modules it names.
    let mut module_edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // (module, file) -> sibling files it names through `super::`.
    let mut file_edges: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for path in &files {
        let rel = path.strip_prefix(&src)?;
        let (module, file) = place(rel);
        if EXEMPT.contains(&module.as_str()) {
            continue;
        }
        let Some(own) = layer(&module) else {
            violations.push(format!(
                "src/{}: module '{module}' is not in the layer table",
                rel.display()
            ));
            continue;
        };
        if file.ends_with("tests") {
            continue;
        }
        // Unit tests sit at the end of a file, after `#[cfg(test)]`; they may
        // build fixtures with anything, so only the code above is checked.
        let text = fs::read_to_string(path)?;
        let production = text
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap_or_default();
        let code = strip(production);
        let in_bin = module == "cli" || module == "main";
        for (line, target) in named_after(&code, "crate::") {
            // In the binary crate `crate::` is the binary itself.
            let target = if in_bin { "cli".to_owned() } else { target };
            if target == module {
                continue;
            }
            match layer(&target) {
                Some(theirs) if theirs <= own => {}
                Some(theirs) => violations.push(format!(
                    "src/{}:{line}: '{module}' (layer {own}) names '{target}' (layer {theirs})",
                    rel.display()
                )),
                None => {
                    // `crate::Name` through the root's re-exports hides the
                    // layer of what it names.
                    violations.push(format!(
                        "src/{}:{line}: names crate::{target}, which is not a module: import it from its module",
                        rel.display()
                    ));
                    continue;
                }
            }
            module_edges
                .entry(module.clone())
                .or_default()
                .insert(target);
        }
        if file != module && file != "mod" {
            for (_, sibling) in named_after(&code, "super::") {
                let exists = src.join(&module).join(format!("{sibling}.rs")).is_file()
                    || src.join(&module).join(&sibling).join("mod.rs").is_file();
                if exists && sibling != file {
                    file_edges
                        .entry((module.clone(), file.clone()))
                        .or_default()
                        .insert(sibling);
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layer violations:\n{}",
        violations.join("\n")
    );
    assert!(
        module_edges.len() >= 10,
        "the scan found imports in {} modules: the parser is broken",
        module_edges.len()
    );
    // Circles among top-level modules.
    if let Some(circle) = find_circle(&module_edges) {
        panic!(
            "modules import each other in a circle: {}",
            circle.join(" -> ")
        );
    }
    // Circles among the files of one module.
    let mut by_module: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for ((module, file), targets) in file_edges {
        by_module.entry(module).or_default().insert(file, targets);
    }
    for (module, edges) in by_module {
        if let Some(circle) = find_circle(&edges) {
            panic!(
                "files of '{module}' import each other in a circle: {}",
                circle.join(" -> ")
            );
        }
    }
    Ok(())
}

/// A circle in the directed graph `edges`, if there is one.
fn find_circle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = stack.iter().position(|n| n == node) {
            let mut circle = stack[pos..].to_vec();
            circle.push(node.to_owned());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, edges, stack, done) {
                return Some(circle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(circle) = visit(node, edges, &mut Vec::new(), &mut done) {
            return Some(circle);
        }
    }
    None
}

#[test]
fn the_layer_check_catches_an_upward_import_and_a_circle() {
    let code = strip("use crate::repo::Repository; // crate::maint\nlet s = \"crate::cli\";\n");
    assert_eq!(
        named_after(&code, "crate::"),
        vec![(1, "repo".to_owned())],
        "comments and strings are not imports"
    );
    assert_eq!(
        named_after("use crate::{error::Error, id::ObjectId};", "crate::"),
        vec![(1, "error".to_owned()), (1, "id".to_owned())]
    );
    let edges = BTreeMap::from([
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]);
    assert!(find_circle(&edges).is_some(), "a <-> b is a circle");
    assert!(layer("store") > layer("durable"), "the table is ordered");
}
