//! `.museignore`: which paths a snapshot leaves out, with the reference
//! implementation's meaning (shared/REFERENCE.md section 10, every case of
//! shared/vectors/museignore.json). It is not gitignore.
//!
//! A rule list is tested top to bottom and the last matching rule wins; a
//! leading `!` makes a rule un-ignore. Nothing else is special: no comments,
//! no `\` escapes, no trimming. How one rule matches a relative POSIX path:
//! - ending in `/` (a directory rule): the path starts with the rule's text,
//!   or the path matches `<rule without trailing />/**` by the rules below
//!   (so `out/` takes everything under a top-level `out/`, and only the
//!   direct children of an `out/` deeper down);
//! - starting with `/`: the whole path against the rest as a glob in which
//!   `*` and `?` also match `/` (`/*.log` takes `x/y/a.log`);
//! - holding a `/` elsewhere: matched from the right, one path component per
//!   pattern component, `*`, `?` and `[...]` within a component and `**`
//!   standing for exactly one component; when that fails and the rule starts
//!   with `**/`, the rest is tried the same way;
//! - without `/`: the last component only (a bare name never takes a
//!   directory's contents).
//!
//! Invariant: matching is linear. Globs never backtrack (see
//! [`crate::name::Glob`]), component rules compare each component once, and
//! a path is tested against each rule once, so the cost of a decision is
//! O(rules × (path + pattern)) whatever the patterns hold: thirty `**` and a
//! 4 KiB path take microseconds.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::name::Glob;

/// The file name of the ignore file at the root of a working tree.
pub const MUSEIGNORE: &str = ".museignore";

/// The patterns every snapshot walk puts before the `.museignore` ones
/// (secrets and OS litter, in the reference's order). Being first, a
/// user's later `!.env` re-includes `.env`, as in the reference.
pub const BUILTIN_PATTERNS: &[&str] = &[
    ".env",
    ".env.*",
    ".envrc",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    ".DS_Store",
    "Thumbs.db",
];

/// How one rule matches (see the module docs).
#[derive(Debug, Clone)]
enum Matcher {
    /// A leading `/`: the whole path as a glob.
    Anchored(Glob),
    /// A `/` elsewhere: components from the right; `retry` is the rule
    /// without its leading `**/`, when it has one.
    FromRight {
        parts: Vec<Glob>,
        retry: Option<Vec<Glob>>,
    },
    /// No `/`: the last component.
    Name(Glob),
    /// An empty pattern (the reference's matcher raises on it): matches
    /// nothing.
    Never,
}

impl Matcher {
    /// The matcher for `pattern` (no `!`, not a directory rule).
    fn new(pattern: &str) -> Self {
        if let Some(rest) = pattern.strip_prefix('/') {
            return Matcher::Anchored(Glob::new(rest));
        }
        if pattern.contains('/') {
            let parts = component_globs(pattern);
            if parts.is_empty() {
                return Matcher::Never;
            }
            let retry = pattern
                .strip_prefix("**/")
                .map(component_globs)
                .filter(|p| !p.is_empty());
            return Matcher::FromRight { parts, retry };
        }
        if pattern.is_empty() {
            Matcher::Never
        } else {
            Matcher::Name(Glob::new(pattern))
        }
    }

    fn matches(&self, path: &PathView, ops: &mut u64) -> bool {
        match self {
            Matcher::Anchored(glob) => glob.matches_counting(&path.text, ops),
            Matcher::FromRight { parts, retry } => {
                from_right(parts, &path.parts, ops)
                    || retry
                        .as_ref()
                        .is_some_and(|r| from_right(r, &path.parts, ops))
            }
            Matcher::Name(glob) => path
                .parts
                .last()
                .is_some_and(|name| glob.matches_counting(name, ops)),
            Matcher::Never => false,
        }
    }
}

/// The components of a pattern as `PurePosixPath` parses them (empty and
/// `.` components dropped), each a glob in which `**` is `*`.
fn component_globs(pattern: &str) -> Vec<Glob> {
    pattern
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(Glob::new)
        .collect()
}

/// `PurePosixPath.match` of a relative pattern: the last `parts.len()`
/// components, one glob each.
fn from_right(parts: &[Glob], path: &[String], ops: &mut u64) -> bool {
    if parts.len() > path.len() {
        return false;
    }
    let tail = &path[path.len() - parts.len()..];
    parts
        .iter()
        .zip(tail)
        .all(|(glob, part)| glob.matches_counting(part, ops))
}

/// A path as the reference's matcher sees it: the text as given (for the
/// prefix test of directory rules), and `PurePosixPath`'s normal form and
/// components.
struct PathView<'a> {
    raw: &'a str,
    text: String,
    parts: Vec<String>,
}

impl<'a> PathView<'a> {
    fn new(raw: &'a str) -> Self {
        let parts: Vec<String> = raw
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::to_owned)
            .collect();
        let text = if parts.is_empty() {
            ".".to_owned()
        } else {
            parts.join("/")
        };
        Self { raw, text, parts }
    }
}

/// One rule of a `.museignore` (or a built-in one).
#[derive(Debug, Clone)]
struct Rule {
    /// The pattern as written, `!` included.
    text: String,
    negate: bool,
    /// For a directory rule: its text after `!`, ending in `/`, for the
    /// literal prefix test.
    dir_prefix: Option<String>,
    matcher: Matcher,
    builtin: bool,
}

impl Rule {
    fn new(text: &str, builtin: bool) -> Self {
        let negate = text.starts_with('!');
        let pattern = if negate { &text[1..] } else { text };
        let (dir_prefix, matcher) = if pattern.ends_with('/') {
            let base = pattern.trim_end_matches('/');
            (
                Some(pattern.to_owned()),
                Matcher::new(&format!("{base}/**")),
            )
        } else {
            (None, Matcher::new(pattern))
        };
        Self {
            text: text.to_owned(),
            negate,
            dir_prefix,
            matcher,
            builtin,
        }
    }

    fn matches(&self, path: &PathView, ops: &mut u64) -> bool {
        if let Some(prefix) = &self.dir_prefix {
            *ops += prefix.len() as u64;
            if path.raw.starts_with(prefix.as_str()) {
                return true;
            }
        }
        self.matcher.matches(path, ops)
    }

    /// Whether this rule matches every path below directory `dir` (a
    /// sufficient test, used only to skip walking such a directory).
    fn covers_everything_below(&self, dir: &str) -> bool {
        let Some(prefix) = &self.dir_prefix else {
            return false;
        };
        if format!("{dir}/").starts_with(prefix.as_str()) {
            return true;
        }
        // `/X/`: everything below a directory that matches the glob X.
        match prefix.strip_prefix('/') {
            Some(rest) => Glob::new(rest.trim_end_matches('/')).matches(dir),
            None => false,
        }
    }

    /// Where this rule means something else than the same line in a
    /// `.gitignore` would, in words; `None` when they agree.
    fn git_difference(&self) -> Option<String> {
        let t = &self.text;
        let p = if self.negate { &t[1..] } else { t.as_str() };
        let core = p.trim_end_matches('/');
        let wild = |s: &str| s.contains(['*', '?', '[']);
        if p.starts_with('#') {
            return Some(format!(
                "'{t}' is a pattern here, not a comment: '#' has no special meaning"
            ));
        }
        if p.ends_with(char::is_whitespace) {
            return Some(format!(
                "'{t}' keeps its trailing whitespace (git trims it)"
            ));
        }
        if p.contains('\\') {
            return Some(format!(
                "'{t}': '\\' is an ordinary character here, not an escape"
            ));
        }
        if let Some(rest) = p.strip_prefix('/') {
            let plain_tree = rest.strip_suffix("/**").is_some_and(|r| !wild(r));
            if wild(rest) && !plain_tree {
                return Some(format!(
                    "'{t}': after a leading '/', '*' and '?' also match '/', so it matches at any depth below (git: they stop at '/')"
                ));
            }
            return None;
        }
        // A directory the walk never enters anyway: what the rule means
        // below the root cannot show.
        if self.dir_prefix.is_some() && super::BUILTIN_SKIPPED_DIRS.contains(&core) {
            return None;
        }
        if self.dir_prefix.is_some() {
            return Some(format!(
                "'{t}' takes everything under a top-level '{core}/' but only the direct children of a '{core}/' further down (git: everything under any of them)"
            ));
        }
        let inner = p.strip_prefix("**/").unwrap_or(p);
        if inner.split('/').any(|c| c == "**") {
            return Some(format!(
                "'{t}': '**' stands for exactly one directory here (git: any number, none included)"
            ));
        }
        if inner.contains('/') {
            return Some(format!(
                "'{t}' is matched from the right, at any depth (git anchors a pattern with a '/' at the root); start it with '/' to anchor it"
            ));
        }
        if !wild(p) && !p.contains('.') {
            return Some(format!(
                "'{t}' takes files named so, never the contents of a directory named so (git: both); write '{p}/' for a directory"
            ));
        }
        None
    }
}

/// What decided a path: the last rule that matched it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IgnoreMatch<'a> {
    /// The rule's text as written (`!` included for a negation).
    pub pattern: &'a str,
    /// Whether it is one of [`BUILTIN_PATTERNS`].
    pub builtin: bool,
    /// Whether the rule ignores (`false`: a `!` rule that brought the path
    /// back).
    pub ignores: bool,
}

/// A pattern whose meaning differs from the same line in a `.gitignore`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IgnoreWarning {
    /// The pattern as written.
    pub pattern: String,
    /// What it means here, and what git would do.
    pub message: String,
}

/// An ordered list of ignore rules.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    rules: Vec<Rule>,
}

#[derive(Debug, Default, Deserialize)]
struct IgnoreFile {
    #[serde(default)]
    global: Section,
    #[serde(default)]
    domain: BTreeMap<String, Section>,
}

#[derive(Debug, Default, Deserialize)]
struct Section {
    #[serde(default)]
    patterns: Vec<String>,
}

impl IgnoreRules {
    /// Rules from `patterns`, in order, taken literally (no comment or
    /// blank-line skipping: the reference has none).
    #[must_use]
    pub fn new<I, S>(patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self {
            rules: patterns
                .into_iter()
                .map(|p| Rule::new(p.as_ref(), false))
                .collect(),
        }
    }

    /// These rules with [`BUILTIN_PATTERNS`] before them: what a snapshot
    /// walk tests every file against.
    #[must_use]
    pub fn with_builtins(&self) -> Self {
        let mut rules: Vec<Rule> = BUILTIN_PATTERNS
            .iter()
            .map(|p| Rule::new(p, true))
            .collect();
        rules.extend(self.rules.iter().filter(|r| !r.builtin).cloned());
        Self { rules }
    }

    /// Rules from the text of a `.museignore`: `[global] patterns`, then
    /// `[domain.<domain>] patterns`. `path` names the file in errors.
    pub fn from_toml(text: &str, domain: &str, path: &Path) -> Result<Self> {
        let file: IgnoreFile = toml::from_str(text).map_err(|e| Error::Corrupt {
            path: path.to_path_buf(),
            reason: format!("{MUSEIGNORE}: TOML parse error — {}", e.message()),
        })?;
        let domain_patterns = file
            .domain
            .get(domain)
            .map(|s| s.patterns.as_slice())
            .unwrap_or_default();
        Ok(Self::new(
            file.global.patterns.iter().chain(domain_patterns),
        ))
    }

    /// The rules of `work_tree/.museignore` for `domain`; none when the file
    /// is absent.
    pub fn load(work_tree: &Path, domain: &str) -> Result<Self> {
        let path = work_tree.join(MUSEIGNORE);
        match crate::files::read_optional_text_following(&path)? {
            Some(text) => Self::from_toml(&text, domain, &path),
            None => Ok(Self::default()),
        }
    }

    /// How many rules there are (built-in ones included, when added).
    #[must_use]
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The patterns, in order, as written.
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.text.as_str())
    }

    /// Whether any rule un-ignores.
    #[must_use]
    pub fn has_negations(&self) -> bool {
        self.rules.iter().any(|r| r.negate)
    }

    /// Whether the relative POSIX path `rel` is ignored: the last rule that
    /// matches it decides, and none matching means kept.
    ///
    /// ```
    /// use muse_store::IgnoreRules;
    ///
    /// let rules = IgnoreRules::new(["*.log", "!keep.log", "out/", "/src/*.rs", "a/**/b"]);
    /// assert!(rules.is_ignored("x/y/a.log"));
    /// assert!(!rules.is_ignored("x/keep.log"));
    /// assert!(rules.is_ignored("out/a/b"), "everything under a top-level out/");
    /// assert!(!rules.is_ignored("x/out/a/b"), "only direct children deeper down");
    /// assert!(rules.is_ignored("src/x/a.rs"), "an anchored * crosses /");
    /// assert!(rules.is_ignored("a/x/b") && !rules.is_ignored("a/x/y/b"), "** is one component");
    /// ```
    #[must_use]
    pub fn is_ignored(&self, rel: &str) -> bool {
        self.decide(rel).is_some_and(|m| m.ignores)
    }

    /// The last rule matching `rel` (what decided it), or `None` when no
    /// rule matches (the path is kept).
    #[must_use]
    pub fn decide(&self, rel: &str) -> Option<IgnoreMatch<'_>> {
        let mut ops = 0;
        self.decide_counting(rel, &mut ops)
    }

    /// [`IgnoreRules::decide`], adding the character steps taken to `ops`.
    pub(crate) fn decide_counting(&self, rel: &str, ops: &mut u64) -> Option<IgnoreMatch<'_>> {
        let path = PathView::new(rel);
        let mut last = None;
        for rule in &self.rules {
            if rule.matches(&path, ops) {
                last = Some(IgnoreMatch {
                    pattern: &rule.text,
                    builtin: rule.builtin,
                    ignores: !rule.negate,
                });
            }
        }
        last
    }

    /// Whether every path below directory `dir` (relative POSIX) is certain
    /// to be ignored, so a walk need not enter it: a directory rule covers
    /// it and no `!` rule comes after that rule.
    #[must_use]
    pub fn ignores_everything_below(&self, dir: &str) -> bool {
        let mut covered = false;
        for rule in &self.rules {
            if rule.negate {
                covered = false;
            } else if !covered && rule.covers_everything_below(dir) {
                covered = true;
            }
        }
        covered
    }

    /// Every pattern (built-in ones aside) whose meaning here differs from
    /// what the same line means in a `.gitignore`, once each, in order.
    #[must_use]
    pub fn git_differences(&self) -> Vec<IgnoreWarning> {
        let mut out: Vec<IgnoreWarning> = Vec::new();
        for rule in self.rules.iter().filter(|r| !r.builtin) {
            if out.iter().any(|w| w.pattern == rule.text) {
                continue;
            }
            if let Some(message) = rule.git_difference() {
                out.push(IgnoreWarning {
                    pattern: rule.text.clone(),
                    message,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignored(patterns: &[&str], path: &str) -> bool {
        IgnoreRules::new(patterns).is_ignored(path)
    }

    #[test]
    fn reference_semantics() {
        assert!(ignored(&["*.tmp"], "x/y/a.tmp"));
        assert!(!ignored(&["*.tmp"], "a.tmp/b.txt"));
        assert!(
            !ignored(&["build"], "build/x.o"),
            "a bare name never takes contents"
        );
        assert!(ignored(&["doc/*.md"], "x/y/doc/a.md"), "from the right");
        assert!(!ignored(&["doc/*.md"], "doc/sub/a.md"));
        assert!(ignored(&["/*.log"], "x/y/a.log"), "anchored * crosses /");
        assert!(!ignored(&["/root.txt"], "x/root.txt"));
        assert!(ignored(&["a/**/b.txt"], "a/x/b.txt"));
        assert!(
            !ignored(&["a/**/b.txt"], "a/b.txt"),
            "** is exactly one component"
        );
        assert!(!ignored(&["a/**/b.txt"], "a/x/y/b.txt"));
        assert!(ignored(&["**/foo"], "foo"), "the **/ retry");
        assert!(ignored(&["out/"], "out/a/b/c"));
        assert!(ignored(&["out/"], "x/out/a"));
        assert!(!ignored(&["out/"], "x/out/a/b"));
        assert!(!ignored(&["out/"], "out"));
        assert!(ignored(&["*.egg-info/"], "p.egg-info/PKG-INFO"));
        assert!(!ignored(&["*.egg-info/"], "p.egg-info/a/b"));
        assert!(ignored(&["a.txt "], "a.txt ") && !ignored(&["a.txt "], "a.txt"));
        assert!(ignored(&["\\!important"], "\\!important"));
        assert!(ignored(&["#notes"], "#notes"));
        assert!(!ignored(&["*.log", "!keep.log"], "keep.log"));
        assert!(ignored(&["!keep.log", "*.log"], "keep.log"));
        assert!(!ignored(&["*.txt", "!docs/"], "x/docs/a.txt"));
        assert!(!ignored(&[""], "a"), "an empty pattern matches nothing");
        assert!(ignored(&["/"], "a/b"), "'/' is '/**': everything");
    }

    #[test]
    fn builtins_come_first_and_can_be_negated() {
        let rules = IgnoreRules::new(["!.env", "!*.pem"]).with_builtins();
        assert!(!rules.is_ignored(".env"), "a later !.env re-includes .env");
        assert!(!rules.is_ignored("a.pem"));
        assert!(rules.is_ignored("b.key"));
        let decided = rules.decide("x/b.key");
        assert_eq!(
            decided,
            Some(IgnoreMatch {
                pattern: "*.key",
                builtin: true,
                ignores: true
            })
        );
        assert_eq!(rules.with_builtins().len(), rules.len(), "added once");
    }

    #[test]
    fn pruning_only_when_certain() {
        let rules = IgnoreRules::new(["target/", "/gen/", "x"]);
        assert!(rules.ignores_everything_below("target"));
        assert!(rules.ignores_everything_below("target/debug"));
        assert!(
            !rules.ignores_everything_below("a/target"),
            "deeper: only children"
        );
        assert!(rules.ignores_everything_below("gen"));
        assert!(!rules.ignores_everything_below("x"));
        let negated = IgnoreRules::new(["target/", "!target/keep"]);
        assert!(!negated.ignores_everything_below("target"));
        let negated_first = IgnoreRules::new(["!keep", "target/"]);
        assert!(negated_first.ignores_everything_below("target"));
    }

    #[test]
    fn warns_where_git_differs() {
        let rules = IgnoreRules::new([
            "*.tmp",
            "logs/**",
            "/src/*.rs",
            "doc/*.md",
            "out/",
            "build",
            "#x",
            "/gen/**",
            "**/foo",
            "*.tmp",
            "logs/**",
        ]);
        let warned: Vec<String> = rules
            .git_differences()
            .into_iter()
            .map(|w| w.pattern)
            .collect();
        assert_eq!(
            warned,
            ["logs/**", "/src/*.rs", "doc/*.md", "out/", "build", "#x"],
            "once per pattern, only where git would differ"
        );
    }

    /// The issue's attack: thirty `**` and a 4 KiB path. Every rule shape
    /// is tested; the steps stay within a small multiple of the work of
    /// reading the path and pattern once, where the old matcher needed
    /// exponentially many (twenty `**` took 50 s).
    #[test]
    fn thirty_double_stars_and_a_4k_path_are_linear() {
        let path = format!("{}/end.txt", vec!["d"; 2048].join("/"));
        assert!(path.len() >= 4096);
        let stars = vec!["**"; 30].join("/");
        for (pattern, expected) in [
            (format!("{stars}/x.txt"), false),
            (format!("{stars}/end.txt"), true),
            (format!("/{stars}/end.txt"), true),
            (format!("/{stars}/x.txt"), false),
            (format!("**/{stars}/x.txt/"), false),
            (format!("a{}b", "**".repeat(30)), false),
            (format!("/{}*t", "*d".repeat(30)), true),
            (format!("/{}*q", "*d/".repeat(30)), false),
            // A long star-free segment searched across the whole path: a
            // naive search compares it at every position.
            (format!("/*{}q*", "d/".repeat(40)), false),
        ] {
            let rules = IgnoreRules::new([pattern.as_str()]);
            let mut ops = 0;
            let decided = rules.decide_counting(&path, &mut ops).is_some();
            assert_eq!(decided, expected, "{pattern}");
            let linear = 4 * (path.len() + pattern.len()) as u64;
            assert!(
                ops <= linear,
                "{pattern:?}: {ops} steps for a {} byte path, more than {linear}",
                path.len()
            );
        }
    }

    #[test]
    fn toml_global_then_domain() -> Result<()> {
        let text = "[global]\npatterns = [\"*.tmp\"]\n[domain.code]\npatterns = [\"target/\"]\n[domain.midi]\npatterns = [\"*.wav\"]\n";
        let rules = IgnoreRules::from_toml(text, "code", Path::new(".museignore"))?;
        assert!(rules.is_ignored("a.tmp"));
        assert!(rules.is_ignored("target/debug/x"));
        assert!(!rules.is_ignored("a.wav"), "other domains do not apply");
        let err = IgnoreRules::from_toml("[global\n", "code", Path::new("/w/.museignore"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("/w/.museignore"), "{err}");
        Ok(())
    }
}
