//! `check-ignore`, `check-attr`, `domain-info`: the reference's plumbing
//! over the working tree's rule files and the repository's domain.

use std::io::Write;

use clap::Args;
use serde_json::{Value, json};

use super::{
    CmdResult, Context, EXIT_INTERNAL, EXIT_USER, Failure, Format, FormatError, emit, emit_line,
    parse_format,
};
use muse_store::{AttributeRule, Attributes, DomainInfo, Error, IgnoreRules, REGISTERED_DOMAINS};

/// A rule file that cannot be read or parsed: the reference's JSON error
/// (its words: `.museignore: TOML parse error — ...`), exit 3.
fn rule_file_failure(err: &Error) -> Failure {
    let message = match err {
        Error::Corrupt { reason, .. } => reason.clone(),
        other => other.to_string(),
    };
    Failure::json(EXIT_INTERNAL, message)
}

#[derive(Debug, Args)]
pub(super) struct CheckIgnoreArgs {
    /// Working-tree-relative POSIX paths to test.
    #[arg(required = true)]
    paths: Vec<String>,
    /// Print nothing: exit 0 when every path is ignored, 1 otherwise.
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// In text, name the pattern that ignored each path.
    #[arg(short = 'V', long = "verbose")]
    verbose: bool,
    /// Output format: json or text.
    #[arg(short = 'f', long = "format", default_value = "json")]
    format: String,
}

pub(super) fn check_ignore(
    ctx: &Context,
    args: &CheckIgnoreArgs,
    out: &mut dyn Write,
) -> CmdResult {
    let format = parse_format(&args.format, FormatError::Json)?;
    let repo = ctx.repo()?;
    let domain = repo.info().map_err(Failure::json_from)?.domain.clone();
    let rules = IgnoreRules::load(repo.work_tree(), &domain).map_err(|e| rule_file_failure(&e))?;
    let verdicts: Vec<_> = args
        .paths
        .iter()
        .map(|p| (p, muse_store::explain_path(repo.work_tree(), &rules, p)))
        .collect();
    if args.quiet {
        return if verdicts.iter().all(|(_, v)| v.museignore.is_some()) {
            Ok(())
        } else {
            Err(Failure::silent(EXIT_USER))
        };
    }
    match format {
        Format::Json => {
            let results: Vec<Value> = verdicts
                .iter()
                .map(|(path, v)| {
                    json!({
                        "path": path,
                        "ignored": v.museignore.is_some(),
                        "matching_pattern": v.museignore,
                        // Extensions: what the built-in rules do, and the
                        // outcome for a snapshot.
                        "builtin_rule": v.builtin,
                        "in_snapshot": v.in_snapshot,
                    })
                })
                .collect();
            emit_line(
                out,
                &json!({ "domain": domain, "patterns_loaded": rules.len(), "results": results }),
            )
        }
        Format::Text => {
            for (path, v) in &verdicts {
                let status = if v.museignore.is_some() {
                    "ignored"
                } else {
                    "ok     "
                };
                match (&v.museignore, args.verbose) {
                    (Some(pattern), true) => {
                        emit(out, format_args!("{status}  {path}    [{pattern}]\n"))?;
                    }
                    _ => emit(out, format_args!("{status}  {path}\n"))?,
                }
            }
            Ok(())
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct CheckAttrArgs {
    /// Working-tree-relative POSIX paths.
    #[arg(required = true)]
    paths: Vec<String>,
    /// The dimension to ask about (`*`: any).
    #[arg(short = 'd', long = "dimension", default_value = "*")]
    dimension: String,
    /// Every matching rule per path, not only the deciding one.
    #[arg(short = 'A', long = "all-rules")]
    all_rules: bool,
    /// Output format: json or text.
    #[arg(short = 'f', long = "format", default_value = "json")]
    format: String,
}

fn rule_json(rule: &AttributeRule) -> Value {
    json!({
        "path_pattern": rule.path_pattern,
        "dimension": rule.dimension,
        "strategy": rule.strategy,
        "comment": rule.comment,
        "priority": rule.priority,
        "source_index": rule.source_index,
    })
}

pub(super) fn check_attr(ctx: &Context, args: &CheckAttrArgs, out: &mut dyn Write) -> CmdResult {
    let format = parse_format(&args.format, FormatError::Json)?;
    let repo = ctx.repo()?;
    let domain = repo.info().map_err(Failure::json_from)?.domain.clone();
    let attrs = Attributes::load(repo.work_tree()).map_err(|e| rule_file_failure(&e))?;
    let dim = args.dimension.as_str();
    if args.all_rules {
        return match format {
            Format::Json => {
                let results: Vec<Value> = args
                    .paths
                    .iter()
                    .map(|p| {
                        let rules: Vec<Value> =
                            attrs.matching(p, dim).into_iter().map(rule_json).collect();
                        json!({ "path": p, "matching_rules": rules })
                    })
                    .collect();
                emit_line(
                    out,
                    &json!({ "domain": domain, "rules_loaded": attrs.len(), "dimension": dim, "results": results }),
                )
            }
            Format::Text => {
                for p in &args.paths {
                    let rules = attrs.matching(p, dim);
                    if rules.is_empty() {
                        emit(out, format_args!("{p}  (no matching rules)\n"))?;
                    }
                    for r in rules {
                        emit(
                            out,
                            format_args!(
                                "{p}  dimension={}  strategy={}  (rule {}: {})\n",
                                r.dimension, r.strategy, r.source_index, r.path_pattern
                            ),
                        )?;
                    }
                }
                Ok(())
            }
        };
    }
    match format {
        Format::Json => {
            let results: Vec<Value> = args
                .paths
                .iter()
                .map(|p| {
                    let rule = attrs.decide(p, dim);
                    json!({
                        "path": p,
                        "dimension": dim,
                        "strategy": attrs.strategy(p, dim),
                        "rule": rule.map(rule_json),
                    })
                })
                .collect();
            emit_line(
                out,
                &json!({ "domain": domain, "rules_loaded": attrs.len(), "dimension": dim, "results": results }),
            )
        }
        Format::Text => {
            for p in &args.paths {
                let info = attrs.decide(p, dim).map_or_else(
                    || "(no matching rule)".to_owned(),
                    |r| format!("(rule {}: {})", r.source_index, r.path_pattern),
                );
                emit(
                    out,
                    format_args!(
                        "{p}  dimension={dim}  strategy={}  {info}\n",
                        attrs.strategy(p, dim)
                    ),
                )?;
            }
            Ok(())
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct DomainInfoArgs {
    /// List every registered domain (no repository needed).
    #[arg(short = 'a', long = "all-domains")]
    all_domains: bool,
    /// Output format: json or text.
    #[arg(short = 'f', long = "format", default_value = "json")]
    format: String,
}

pub(super) fn domain_info(ctx: &Context, args: &DomainInfoArgs, out: &mut dyn Write) -> CmdResult {
    let format = parse_format(&args.format, FormatError::Json)?;
    if args.all_domains {
        return match format {
            Format::Json => emit_line(out, &json!({ "registered_domains": REGISTERED_DOMAINS })),
            Format::Text => {
                for d in REGISTERED_DOMAINS {
                    emit(out, format_args!("{d}\n"))?;
                }
                Ok(())
            }
        };
    }
    let repo = ctx.repo()?;
    let domain = repo.info().map_err(Failure::json_from)?.domain.clone();
    let Some(info) = DomainInfo::of(&domain) else {
        return Err(Failure::json(
            EXIT_USER,
            if REGISTERED_DOMAINS.contains(&domain.as_str()) {
                format!(
                    "the '{domain}' domain's plugin is not described by this implementation (only 'code' is)"
                )
            } else {
                format!(
                    "Unknown domain '{domain}': not one of {}",
                    REGISTERED_DOMAINS.join(", ")
                )
            },
        ));
    };
    match format {
        Format::Json => emit_line(
            out,
            &json!({
                "domain": info.domain,
                "plugin_class": info.plugin_class,
                "capabilities": info.capabilities,
                "schema": info.schema,
                "registered_domains": REGISTERED_DOMAINS,
            }),
        ),
        Format::Text => {
            let caps = info.active_capabilities();
            let caps = if caps.is_empty() {
                "none".to_owned()
            } else {
                caps.join(", ")
            };
            emit(
                out,
                format_args!(
                    "Domain:       {}\nPlugin:       {}\nMerge mode:   {}\nCapabilities: {caps}\nRegistered:   {}\n",
                    info.domain,
                    info.plugin_class,
                    info.merge_mode(),
                    REGISTERED_DOMAINS.join(", ")
                ),
            )
        }
    }
}
