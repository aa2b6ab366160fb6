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

/// `code` with the whitespace around every `::` removed (`crate :: x` and a
/// path split over lines are the same path).
fn join_paths(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("::") {
        // Keep newlines (line numbers); drop other whitespace before `::`.
        let before = &rest[..at];
        let trimmed = before.trim_end_matches(|c: char| c.is_whitespace());
        out.push_str(trimmed);
        out.extend(before[trimmed.len()..].chars().filter(|&c| c == '\n'));
        out.push_str("::");
        let after = &rest[at + 2..];
        let skipped = after.trim_start_matches(|c: char| c.is_whitespace());
        out.extend(
            after[..after.len() - skipped.len()]
                .chars()
                .filter(|&c| c == '\n'),
        );
        rest = skipped;
    }
    out.push_str(rest);
    out
}

/// The first path segments after `prefix` (`crate::` or `super::`) in
/// `code`, with their line numbers: `prefix::{a, b::{c}, d}` yields `a`,
/// `b` and `d`, across lines. A segment that is not an identifier (a macro
/// variable such as `$m`) is returned as it is, so the caller can refuse it.
fn named_after(code: &str, prefix: &str) -> Vec<(usize, String)> {
    let code = join_paths(code);
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(rel) = code[from..].find(prefix) {
        let at = from + rel;
        from = at + prefix.len();
        let before_ok = !code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '$');
        if !before_ok {
            continue;
        }
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            // The group's top-level items, nested groups skipped.
            let mut depth = 0usize;
            let mut item_start = true;
            for (offset, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        item_start = false;
                        let item = &group[offset..];
                        let name = if item.starts_with('$') {
                            "$".to_owned()
                        } else {
                            ident_at(item).to_owned()
                        };
                        found.push((line_of(from + 1 + offset), name));
                    }
                    _ => {}
                }
            }
        } else if rest.starts_with('$') {
            found.push((line_of(at), "$".to_owned()));
        } else {
            let name = ident_at(rest);
            if !name.is_empty() {
                found.push((line_of(at), name.to_owned()));
            }
        }
    }
    found
}

/// The code of a file without its unit tests (`#[cfg(test)] mod tests` at
/// the end, which may build fixtures with anything), comments and strings
/// stripped.
fn production_code(text: &str) -> String {
    let production = text
        .rfind("\n#[cfg(test)]\nmod tests {")
        .map_or(text, |at| &text[..at]);
    strip(production)
}

/// Ways of naming the crate that hide the layer of what they name.
fn aliases(code: &str) -> impl Iterator<Item = String> + '_ {
    [
        ("crate as ", "aliases the crate"),
        ("extern crate self", "aliases the crate"),
        ("muse_store::", "names the library by its external name"),
    ]
    .into_iter()
    .filter(|(pattern, _)| code.contains(pattern))
    .map(|(pattern, why)| format!("{why} ('{pattern}'), which hides the layer of what it names"))
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
        let in_bin = module == "cli" || module == "main";
        let Some(own) = layer(&module) else {
            violations.push(format!(
                "src/{}: module '{module}' is not in the layer table",
                rel.display()
            ));
            continue;
        };
        if file == "tests" || file.ends_with("/tests") {
            continue;
        }
        let code = production_code(&fs::read_to_string(path)?);
        if !in_bin {
            violations.extend(aliases(&code).map(|why| format!("src/{}: {why}", rel.display())));
        }
        // In a top-level file or a mod.rs, `super::` is the crate root; in a
        // file of a module, `super::super::` is.
        let root_via_super: Vec<(usize, String)> = if in_bin {
            Vec::new()
        } else if file == module || file == "mod" {
            named_after(&code, "super::")
        } else {
            named_after(&code, "super::super::")
        };
        for (line, target) in named_after(&code, "crate::")
            .into_iter()
            .chain(root_via_super)
        {
            if target == "$" {
                violations.push(format!(
                    "src/{}:{line}: a macro builds a crate path, which the layer check cannot see",
                    rel.display()
                ));
                continue;
            }
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
            for (_, sibling) in named_after(&code.replace("super::super::", ""), "super::") {
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
    assert_no_circles(&module_edges, file_edges);
    Ok(())
}

/// Fails on a circle among top-level modules, or among the files of one
/// module.
fn assert_no_circles(
    module_edges: &BTreeMap<String, BTreeSet<String>>,
    file_edges: BTreeMap<(String, String), BTreeSet<String>>,
) {
    // Circles among top-level modules.
    if let Some(circle) = find_circle(module_edges) {
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
    assert_eq!(
        named_after(
            "use crate::{\n    id::{ObjectId},\n    porcelain::Status,\n};\nlet x = crate :: repo\n::X;",
            "crate::"
        ),
        vec![
            (2, "id".to_owned()),
            (3, "porcelain".to_owned()),
            (5, "repo".to_owned())
        ],
        "multi-line groups, nested groups and spaced paths"
    );
    assert_eq!(
        named_after(
            "macro_rules! up { ($m:ident) => { crate::$m::X } }",
            "crate::"
        ),
        vec![(1, "$".to_owned())],
        "a macro-built path is reported"
    );
    let edges = BTreeMap::from([
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]);
    assert!(find_circle(&edges).is_some(), "a <-> b is a circle");
    assert!(layer("store") > layer("durable"), "the table is ordered");
}
