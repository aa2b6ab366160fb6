//! `.museignore`: gitignore-style patterns from a TOML file.
//!
//! Semantics (shared/FORMAT.md): `*` and `?` stay within one path component,
//! `**` as a whole component crosses any number of them, `[...]` is a
//! character class, `\` escapes; a leading `/` anchors at the root (as in
//! gitignore, a `/` inside the pattern anchors too; a pattern without one
//! matches a name at any depth); a trailing `/` matches only directories, and
//! so everything under them; a leading `!` un-ignores; the last matching
//! pattern wins. A file is matched through its own path and each directory
//! above it, so `!build/keep.txt` after `build/` brings that one file back.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The file name of the ignore file at the root of a working tree.
pub const MUSEIGNORE: &str = ".museignore";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    Any,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Tok {
    fn matches(&self, c: char) -> bool {
        match self {
            Tok::Lit(l) => *l == c,
            Tok::Any => true,
            Tok::Star => false,
            Tok::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Segment {
    /// `**`: any number of components, including none.
    AnyDepth,
    /// A glob within one component.
    Glob(Vec<Tok>),
}

/// One parsed pattern.
#[derive(Debug, Clone)]
struct Rule {
    negate: bool,
    dir_only: bool,
    anchored: bool,
    segments: Vec<Segment>,
}

fn tokenize(segment: &str) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut chars = segment.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => toks.push(Tok::Lit(chars.next().unwrap_or('\\'))),
            '?' => toks.push(Tok::Any),
            // `**` inside a component is just `*`.
            '*' => {
                if toks.last() != Some(&Tok::Star) {
                    toks.push(Tok::Star);
                }
            }
            '[' => {
                let rest: String = chars.clone().collect();
                match parse_class(&rest) {
                    Some((tok, used)) => {
                        toks.push(tok);
                        for _ in 0..used {
                            chars.next();
                        }
                    }
                    None => toks.push(Tok::Lit('[')),
                }
            }
            c => toks.push(Tok::Lit(c)),
        }
    }
    toks
}

/// Parses a class body after `[`; returns the token and how many chars it
/// consumed (including the closing `]`), or `None` when it is not closed.
fn parse_class(rest: &str) -> Option<(Tok, usize)> {
    let chars: Vec<char> = rest.chars().collect();
    let mut i = 0;
    let negated = matches!(chars.first(), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    while i < chars.len() {
        let c = chars[i];
        if c == ']' && !first {
            return Some((Tok::Class { negated, ranges }, i + 1));
        }
        first = false;
        let lo = if c == '\\' && i + 1 < chars.len() {
            i += 1;
            chars[i]
        } else {
            c
        };
        if i + 2 < chars.len() && chars[i + 1] == '-' && chars[i + 2] != ']' {
            ranges.push((lo, chars[i + 2]));
            i += 3;
        } else {
            ranges.push((lo, lo));
            i += 1;
        }
    }
    None
}

/// Glob match of one component (iterative, backtracking only to the last `*`).
fn glob(toks: &[Tok], text: &str) -> bool {
    let s: Vec<char> = text.chars().collect();
    let (mut t, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if let Some(tok) = toks.get(t) {
            if *tok == Tok::Star {
                star = Some((t, i));
                t += 1;
                continue;
            }
            if tok.matches(s[i]) {
                t += 1;
                i += 1;
                continue;
            }
        }
        match star {
            Some((st, si)) => {
                t = st + 1;
                i = si + 1;
                star = Some((st, si + 1));
            }
            None => return false,
        }
    }
    toks[t..].iter().all(|tok| *tok == Tok::Star)
}

fn match_segments(segments: &[Segment], path: &[&str]) -> bool {
    match segments.split_first() {
        None => path.is_empty(),
        Some((Segment::AnyDepth, rest)) => {
            (0..=path.len()).any(|skip| match_segments(rest, &path[skip..]))
        }
        Some((Segment::Glob(toks), rest)) => path
            .split_first()
            .is_some_and(|(first, tail)| glob(toks, first) && match_segments(rest, tail)),
    }
}

impl Rule {
    fn parse(pattern: &str) -> Option<Self> {
        let mut p = pattern.trim();
        if p.is_empty() || p.starts_with('#') {
            return None;
        }
        let negate = p.starts_with('!');
        // `\!` and `\#` stand for a literal leading `!` or `#`.
        if negate || p.starts_with("\\!") || p.starts_with("\\#") {
            p = &p[1..];
        }
        let dir_only = p.ends_with('/');
        let p = p.trim_end_matches('/');
        let anchored = p.starts_with('/') || p.contains('/');
        let p = p.trim_start_matches('/');
        if p.is_empty() {
            return None;
        }
        let segments = p
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                if s == "**" {
                    Segment::AnyDepth
                } else {
                    Segment::Glob(tokenize(s))
                }
            })
            .collect();
        Some(Self {
            negate,
            dir_only,
            anchored,
            segments,
        })
    }

    /// Whether the rule matches the path made of `components`.
    fn matches(&self, components: &[&str]) -> bool {
        if self.anchored {
            match_segments(&self.segments, components)
        } else {
            // A slash-free pattern is one segment matched against the name.
            components
                .last()
                .is_some_and(|name| match_segments(&self.segments, &[name]))
        }
    }
}

/// Parsed ignore patterns, in file order.
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
    /// Rules from patterns in order (blank lines and `#` comments skipped).
    #[must_use]
    pub fn new<I, S>(patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self {
            rules: patterns
                .into_iter()
                .filter_map(|p| Rule::parse(p.as_ref()))
                .collect(),
        }
    }

    /// Rules from the text of a `.museignore`: `[global] patterns`, then
    /// `[domain.<domain>] patterns`. `path` names the file in errors.
    pub fn from_toml(text: &str, domain: &str, path: &Path) -> Result<Self> {
        let file: IgnoreFile = toml::from_str(text).map_err(|e| Error::Corrupt {
            path: path.to_path_buf(),
            reason: format!("not a valid .museignore (TOML): {e}"),
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
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_toml(&text, domain, &path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::io("read", path, e)),
        }
    }

    /// Whether any rule un-ignores (then ignored directories must still be
    /// walked, for the files a later `!` pattern brings back).
    #[must_use]
    pub fn has_negations(&self) -> bool {
        self.rules.iter().any(|r| r.negate)
    }

    /// Whether the POSIX relative path `rel` (a directory when `is_dir`) is
    /// ignored: the last rule matching it, or any directory above it, wins.
    #[must_use]
    pub fn is_ignored(&self, rel: &str, is_dir: bool) -> bool {
        let components: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
        let mut ignored = false;
        for rule in &self.rules {
            let whole = (!rule.dir_only || is_dir) && rule.matches(&components);
            let above = whole || (1..components.len()).any(|len| rule.matches(&components[..len]));
            if above {
                ignored = !rule.negate;
            }
        }
        ignored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignored(patterns: &[&str], path: &str) -> bool {
        IgnoreRules::new(patterns).is_ignored(path, false)
    }

    #[test]
    fn star_stays_within_a_component() {
        assert!(ignored(&["*.tmp"], "a.tmp"));
        assert!(
            ignored(&["*.tmp"], "deep/er/a.tmp"),
            "slash-free matches at any depth"
        );
        assert!(!ignored(&["*.tmp"], "a.tmp.txt"));
        assert!(ignored(&["src/*.rs"], "src/main.rs"));
        assert!(
            !ignored(&["src/*.rs"], "src/lib/mod.rs"),
            "* does not cross /"
        );
        assert!(!ignored(&["src/*.rs"], "x/src/main.rs"), "inner / anchors");
        assert!(ignored(&["?.txt"], "a.txt"));
        assert!(!ignored(&["?.txt"], "ab.txt"));
        assert!(ignored(&["[ab].txt"], "b.txt"));
        assert!(!ignored(&["[!ab].txt"], "b.txt"));
        assert!(ignored(&["[a-c]x"], "bx"));
    }

    #[test]
    fn double_star_crosses_components() {
        assert!(
            ignored(&["src/**/*.rs"], "src/main.rs"),
            "** matches zero dirs"
        );
        assert!(ignored(&["src/**/*.rs"], "src/a/b/c.rs"));
        assert!(ignored(&["**/cache"], "a/b/cache"));
        assert!(ignored(&["**/cache"], "cache"));
        assert!(ignored(&["logs/**"], "logs/a/b.txt"));
        assert!(!ignored(&["logs/**"], "logs2/a"));
    }

    #[test]
    fn leading_slash_anchors_at_the_root() {
        assert!(ignored(&["/out.txt"], "out.txt"));
        assert!(!ignored(&["/out.txt"], "sub/out.txt"));
        assert!(ignored(&["out.txt"], "sub/out.txt"));
        assert!(ignored(&["/tmp"], "tmp/x/y"), "anchored directory name");
        assert!(!ignored(&["/tmp"], "a/tmp/x"));
    }

    #[test]
    fn trailing_slash_matches_everything_under_a_directory() {
        let rules = IgnoreRules::new(["build/"]);
        assert!(rules.is_ignored("build/x.o", false));
        assert!(rules.is_ignored("a/build/deep/x.o", false));
        assert!(rules.is_ignored("build", true));
        assert!(
            !rules.is_ignored("build", false),
            "a file named build is kept"
        );
        assert!(ignored(&["*.egg-info/"], "pkg.egg-info/PKG-INFO"));
    }

    #[test]
    fn negation_and_last_match_wins() {
        assert!(!ignored(&["*.log", "!keep.log"], "keep.log"));
        assert!(ignored(&["*.log", "!keep.log"], "other.log"));
        assert!(
            ignored(&["!keep.log", "*.log"], "keep.log"),
            "last match wins"
        );
        assert!(!ignored(&["build/", "!build/keep.txt"], "build/keep.txt"));
        assert!(ignored(&["build/", "!build/keep.txt"], "build/other.txt"));
        assert!(IgnoreRules::new(["a", "!b"]).has_negations());
        assert!(ignored(&["\\!bang"], "!bang"), "escaped leading !");
        assert!(!ignored(&["# comment", ""], "# comment"));
    }

    #[test]
    fn toml_global_then_domain() -> Result<()> {
        let text = "[global]\npatterns = [\"*.tmp\"]\n[domain.code]\npatterns = [\"target/\"]\n[domain.midi]\npatterns = [\"*.wav\"]\n";
        let rules = IgnoreRules::from_toml(text, "code", Path::new(".museignore"))?;
        assert!(rules.is_ignored("a.tmp", false));
        assert!(rules.is_ignored("target/debug/x", false));
        assert!(
            !rules.is_ignored("a.wav", false),
            "other domains do not apply"
        );
        let err = IgnoreRules::from_toml("[global\n", "code", Path::new("/w/.museignore"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("/w/.museignore"), "{err}");
        Ok(())
    }
}
