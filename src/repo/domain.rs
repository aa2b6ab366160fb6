//! The domain a repository is for (`domain` in `repo.json`), and what the
//! reference implementation says about its plugin (`muse plumbing
//! domain-info`).
//!
//! Invariant: the description of a domain is the reference's, key order
//! included (shared/vectors/plumbing.json, `domain-info`), so the plumbing
//! output built from it is byte-identical. Only the `code` domain's plugin
//! is described: the reference's `midi` and `scaffold` plugins are
//! registered names here, without their schemas.

use serde::Serialize;
use serde_json::{Value, json};

/// The domains the reference registers, in its order.
pub const REGISTERED_DOMAINS: &[&str] = &["code", "midi", "scaffold"];

/// What the reference's plugin for a domain declares.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainInfo {
    /// The domain (`code`).
    pub domain: String,
    /// The reference's plugin class (`CodePlugin`).
    pub plugin_class: &'static str,
    /// Which optional protocols the plugin implements, in the reference's
    /// order: `structured_merge`, `crdt`, `rerere`.
    pub capabilities: Value,
    /// The plugin's schema, as the reference prints it.
    pub schema: Value,
}

impl DomainInfo {
    /// The description of `domain`, or `None` for a domain this
    /// implementation has no description of.
    #[must_use]
    pub fn of(domain: &str) -> Option<Self> {
        (domain == "code").then(|| Self {
            domain: "code".to_owned(),
            plugin_class: "CodePlugin",
            capabilities: json!({"structured_merge": true, "crdt": false, "rerere": false}),
            schema: code_schema(),
        })
    }

    /// The capabilities that are true, in order (`structured_merge`).
    #[must_use]
    pub fn active_capabilities(&self) -> Vec<&str> {
        self.capabilities
            .as_object()
            .map(|caps| {
                caps.iter()
                    .filter(|(_, on)| on.as_bool() == Some(true))
                    .map(|(name, _)| name.as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The schema's merge mode (`three_way`).
    #[must_use]
    pub fn merge_mode(&self) -> &str {
        self.schema["merge_mode"].as_str().unwrap_or("unknown")
    }
}

fn dimension(name: &str, description: &str, schema: &Value, independent_merge: bool) -> Value {
    json!({
        "name": name,
        "description": description,
        "schema": schema,
        "independent_merge": independent_merge,
    })
}

/// The reference 0.1.5's `CodePlugin.schema()`.
fn code_schema() -> Value {
    let tree = |node_type: &str| json!({"kind": "tree", "node_type": node_type, "diff_algorithm": "gumtree"});
    let set = |element_type: &str| json!({"kind": "set", "element_type": element_type, "identity": "by_content"});
    json!({
        "domain": "code",
        "description": "Semantic version control for source code. Treats code as a structured system of named symbols (functions, classes, methods) rather than lines of text. Two commits that only reformat a file produce no delta. Renames and moves are detected via content-addressed symbol identity.",
        "top_level": tree("module"),
        "dimensions": [
            dimension("structure", "Module / file tree. Tracks which files exist and how they relate to each other.", &tree("file"), false),
            dimension("symbols", "AST symbol tree. Functions, classes, methods, and variables \u{2014} the primary unit of semantic change.", &tree("symbol"), true),
            dimension("imports", "Import set. Tracks added / removed import statements as an unordered set \u{2014} order is semantically irrelevant.", &set("import"), true),
            dimension("variables", "Top-level variable and constant assignments. Tracked as an unordered set.", &set("variable"), true),
            dimension("metadata", "Non-code files: configuration, documentation, build scripts, etc. Tracked at file granularity.", &set("file"), true),
        ],
        "merge_mode": "three_way",
        "schema_version": "0.1.5",
    })
}
