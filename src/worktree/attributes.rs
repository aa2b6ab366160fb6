//! `.museattributes`: merge-strategy rules per path and dimension, with the
//! reference implementation's meaning (`muse plumbing check-attr`).
//!
//! The file is TOML: an optional `[meta] domain`, then `[[rules]]` with
//! `path` (a glob, Python's `fnmatch`, in which `*` crosses `/`),
//! `dimension` (a domain axis or `*`), `strategy`, and optionally `comment`
//! and `priority` (an integer, default 0). Rules are tried in priority
//! order, highest first, file order among equals; a rule applies to a path
//! when its glob matches and its dimension is `*`, the asked dimension, or
//! the asked dimension is `*`. The first that applies decides; none means
//! `auto`.
//!
//! Invariant: a file that does not parse, a rule missing a field, or an
//! unknown strategy is an error naming the file; nothing is guessed.

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::name::Glob;

/// The file name of the attributes file at the root of a working tree.
pub const MUSEATTRIBUTES: &str = ".museattributes";

/// The strategies a rule may name.
pub const STRATEGIES: &[&str] = &["ours", "theirs", "union", "auto", "manual", "base"];

/// One rule, as the reference reports it.
#[derive(Debug, Clone, Serialize)]
pub struct AttributeRule {
    /// The glob matched against the path.
    pub path_pattern: String,
    /// The dimension it applies to (`*`: all).
    pub dimension: String,
    /// What it resolves to.
    pub strategy: String,
    /// Free text.
    pub comment: String,
    /// Higher is tried first.
    pub priority: i64,
    /// Its place in the file's `[[rules]]`, from 0.
    pub source_index: usize,
    #[serde(skip)]
    glob: Glob,
}

impl AttributeRule {
    fn applies(&self, path: &str, dimension: &str) -> bool {
        (self.dimension == "*" || self.dimension == dimension || dimension == "*")
            && self.glob.matches(path)
    }
}

/// The rules of a `.museattributes`, in the order they are tried.
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    /// `[meta] domain`, when given.
    pub domain: Option<String>,
    rules: Vec<AttributeRule>,
}

impl Attributes {
    /// Parses the text of a `.museattributes`; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            bad(format!(
                "{MUSEATTRIBUTES}: TOML parse error — {}",
                e.message()
            ))
        })?;
        let domain = table
            .get("meta")
            .and_then(|m| m.get("domain"))
            .and_then(|d| d.as_str())
            .map(str::to_owned);
        let mut rules = Vec::new();
        if let Some(list) = table.get("rules").and_then(|r| r.as_array()) {
            for (idx, entry) in list.iter().enumerate() {
                let Some(entry) = entry.as_table() else {
                    continue;
                };
                let text_field = |key: &str| entry.get(key).and_then(|v| v.as_str());
                let missing: Vec<&str> = ["path", "dimension", "strategy"]
                    .into_iter()
                    .filter(|k| text_field(k).is_none())
                    .collect();
                if !missing.is_empty() {
                    return Err(bad(format!(
                        "{MUSEATTRIBUTES}: rule[{idx}] is missing required field(s): {}",
                        missing.join(", ")
                    )));
                }
                let strategy = text_field("strategy").unwrap_or_default();
                if !STRATEGIES.contains(&strategy) {
                    return Err(bad(format!(
                        "{MUSEATTRIBUTES}: rule[{idx}]: unknown strategy '{strategy}'. Valid strategies: {}",
                        STRATEGIES.join(", ")
                    )));
                }
                let pattern = text_field("path").unwrap_or_default();
                rules.push(AttributeRule {
                    path_pattern: pattern.to_owned(),
                    dimension: text_field("dimension").unwrap_or_default().to_owned(),
                    strategy: strategy.to_owned(),
                    comment: text_field("comment").unwrap_or_default().to_owned(),
                    priority: entry
                        .get("priority")
                        .and_then(toml::Value::as_integer)
                        .unwrap_or(0),
                    source_index: idx,
                    glob: Glob::new(pattern),
                });
            }
        }
        // Stable: file order among equal priorities.
        rules.sort_by_key(|r| std::cmp::Reverse(r.priority));
        Ok(Self { domain, rules })
    }

    /// The rules of `work_tree/.museattributes`; none when it is absent.
    pub fn load(work_tree: &Path) -> Result<Self> {
        let path = work_tree.join(MUSEATTRIBUTES);
        match crate::files::read_optional_text_following(&path)? {
            Some(text) => Self::parse(&text, &path),
            None => Ok(Self::default()),
        }
    }

    /// How many rules there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule that decides `path` in `dimension` (`*`: any), if one does.
    ///
    /// ```
    /// use muse_store::Attributes;
    /// use std::path::Path;
    ///
    /// let text = "[[rules]]\npath = \"*.txt\"\ndimension = \"*\"\nstrategy = \"ours\"\n";
    /// let attrs = Attributes::parse(text, Path::new(".museattributes")).unwrap();
    /// assert_eq!(attrs.strategy("a/b.txt", "*"), "ours");
    /// assert_eq!(attrs.strategy("a.rs", "*"), "auto");
    /// ```
    #[must_use]
    pub fn decide(&self, path: &str, dimension: &str) -> Option<&AttributeRule> {
        self.rules.iter().find(|r| r.applies(path, dimension))
    }

    /// Every rule that applies to `path` in `dimension`, in the order tried.
    #[must_use]
    pub fn matching(&self, path: &str, dimension: &str) -> Vec<&AttributeRule> {
        self.rules
            .iter()
            .filter(|r| r.applies(path, dimension))
            .collect()
    }

    /// The strategy for `path` in `dimension`: the deciding rule's, or
    /// `auto`.
    #[must_use]
    pub fn strategy(&self, path: &str, dimension: &str) -> &str {
        self.decide(path, dimension)
            .map_or("auto", |r| r.strategy.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_RULES: &str = "[meta]\ndomain = \"code\"\n\n[[rules]]\npath = \"song.txt\"\ndimension = \"melodic\"\nstrategy = \"theirs\"\n\n[[rules]]\npath = \"*.txt\"\ndimension = \"*\"\nstrategy = \"ours\"\npriority = 10\n";

    #[test]
    fn priority_then_file_order_decides() -> std::result::Result<(), Box<dyn std::error::Error>> {
        let attrs = Attributes::parse(TWO_RULES, Path::new(MUSEATTRIBUTES))?;
        assert_eq!(attrs.len(), 2);
        assert_eq!(attrs.domain.as_deref(), Some("code"));
        let rule = attrs.decide("song.txt", "melodic").ok_or("a rule")?;
        assert_eq!((rule.strategy.as_str(), rule.source_index), ("ours", 1));
        let all: Vec<usize> = attrs
            .matching("song.txt", "*")
            .iter()
            .map(|r| r.source_index)
            .collect();
        assert_eq!(all, [1, 0], "highest priority first");
        assert_eq!(attrs.strategy("x/song.rs", "*"), "auto");
        assert_eq!(attrs.strategy("x/a.txt", "harmonic"), "ours", "* crosses /");
        Ok(())
    }

    #[test]
    fn bad_rules_are_errors_naming_the_file() {
        for text in [
            "[[rules]]\npath = \"x\"\n",
            "[[rules]]\npath = \"x\"\ndimension = \"*\"\nstrategy = \"mine\"\n",
            "[meta\n",
        ] {
            let err = Attributes::parse(text, Path::new("/w/.museattributes"))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("/w/.museattributes"), "{text:?}: {err}");
        }
    }
}
