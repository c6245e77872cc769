//! Typed readers for single values. Each one reports what it found and
//! what would be valid, then returns `None` (or an empty default) so the
//! caller can keep going and find the next problem.

use crate::diag::{Pos, Sink};
use crate::yaml::{short, Node, Value};

/// The name patterns of LAIN's schema: `[a-zA-Z][a-zA-Z0-9]*(-[a-zA-Z0-9]+)*`
/// (appnames, proc names, service names).
pub fn is_core_name(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => {}
        _ => return false,
    }
    let mut prev_dash = false;
    for c in chars {
        if c == '-' {
            if prev_dash {
                return false;
            }
            prev_dash = true;
        } else if c.is_ascii_alphanumeric() {
            prev_dash = false;
        } else {
            return false;
        }
    }
    !prev_dash
}

pub(crate) const NAME_RULE: &str =
    "a letter, then letters and digits, with single dashes between them ([a-zA-Z][a-zA-Z0-9]*(-[a-zA-Z0-9]+)*)";

/// Hint for a value that YAML 1.1 typed differently than the author meant.
fn yaml11_hint(node: &Node) -> &'static str {
    match node.value {
        Value::Bool(_) if node.plain => {
            " (YAML 1.1, which LAIN uses, reads yes/no/on/off/true/false as booleans: quote it)"
        }
        Value::Int(_) | Value::Float(_) | Value::BigInt | Value::Timestamp if node.plain => {
            " (quote it to make it text)"
        }
        Value::Null => " (the value is empty)",
        _ => "",
    }
}

pub(crate) fn string(sink: &mut Sink, path: &str, node: &Node) -> Option<String> {
    match &node.value {
        Value::Str(s) => Some(s.clone()),
        _ => {
            sink.error(
                node.pos,
                format!(
                    "`{path}`: expected a string, found {}{}",
                    node.describe(),
                    yaml11_hint(node)
                ),
            );
            None
        }
    }
}

pub(crate) fn int(sink: &mut Sink, path: &str, node: &Node, what: &str) -> Option<i64> {
    match &node.value {
        Value::Int(i) => Some(*i),
        Value::BigInt => {
            sink.error(
                node.pos,
                format!("`{path}`: expected {what}, found {}", node.describe()),
            );
            None
        }
        // Unquoted and still a string although it reads as a number: only
        // a leading 0 with an 8 or 9 after it (`08`, `019`) does that.
        Value::Str(s) if node.plain && s.parse::<i64>().is_ok() => {
            let n = s.parse::<i64>().unwrap_or_default();
            sink.error(
                node.pos,
                format!(
                    "`{path}`: expected {what}, found `{}`: YAML 1.1 (which LAIN uses) reads a \
                     number with a leading 0 as octal, and 8 and 9 are not octal digits, so \
                     this is text; write `{n}` (without the leading 0)",
                    short(s)
                ),
            );
            None
        }
        Value::Str(s) if s.trim().parse::<i64>().is_ok() => {
            sink.error(
                node.pos,
                format!(
                    "`{path}`: expected {what}, found {}: write the number without quotes",
                    node.describe()
                ),
            );
            None
        }
        _ => {
            sink.error(
                node.pos,
                format!("`{path}`: expected {what}, found {}", node.describe()),
            );
            None
        }
    }
}

/// An integer within `min..=max`.
pub(crate) fn int_in(
    sink: &mut Sink,
    path: &str,
    node: &Node,
    min: i64,
    max: i64,
    what: &str,
) -> Option<i64> {
    let v = int(sink, path, node, what)?;
    if v < min || v > max {
        sink.error(
            node.pos,
            format!("`{path}`: {v} is out of range: {what} must be between {min} and {max}"),
        );
        return None;
    }
    Some(v)
}

pub(crate) fn boolean(sink: &mut Sink, path: &str, node: &Node) -> Option<bool> {
    match &node.value {
        Value::Bool(b) => Some(*b),
        Value::Str(s) if crate::resolve::parse_bool(s).is_some() => {
            sink.error(
                node.pos,
                format!(
                    "`{path}`: expected true or false, found {}: remove the quotes",
                    node.describe()
                ),
            );
            None
        }
        _ => {
            sink.error(
                node.pos,
                format!(
                    "`{path}`: expected true or false (yes/no also work), found {}",
                    node.describe()
                ),
            );
            None
        }
    }
}

/// A mapping's entries, or an error naming what was found.
pub(crate) fn mapping<'n>(
    sink: &mut Sink,
    path: &str,
    node: &'n Node,
    example: &str,
) -> Option<&'n [(Node, Node)]> {
    match &node.value {
        Value::Map(es) => Some(es),
        _ => {
            sink.error(
                node.pos,
                format!(
                    "`{path}`: expected a mapping of keys{example}, found {}",
                    node.describe()
                ),
            );
            None
        }
    }
}

/// A mapping key; LAIN's keys are always strings.
pub(crate) fn key<'n>(sink: &mut Sink, path: &str, node: &'n Node) -> Option<&'n str> {
    match &node.value {
        Value::Str(s) => Some(s),
        _ => {
            sink.error(
                node.pos,
                format!(
                    "`{path}`: keys here are names, found {}{}",
                    node.describe(),
                    yaml11_hint(node)
                ),
            );
            None
        }
    }
}

/// How a list field treats a single string written in its place.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Single {
    /// LAIN reads it as a one-item list (labels, filters): fine.
    Accept,
    /// LAIN would iterate its characters: accepted as a one-item list, with
    /// a warning, since that is what the author meant.
    Warn,
}

/// A list of strings. Null is an empty list (LAIN's `or []`); a lone
/// string is a one-item list; anything else is reported.
pub(crate) fn string_list(
    sink: &mut Sink,
    path: &str,
    node: &Node,
    single: Single,
) -> Vec<(String, Pos)> {
    match &node.value {
        Value::Null => Vec::new(),
        Value::Str(s) => {
            if single == Single::Warn {
                sink.warn(
                    node.pos,
                    format!(
                        "`{path}` should be a list; a single string is taken as a one-item list: \
                         write `- {}` on its own line",
                        short(s)
                    ),
                );
            }
            vec![(s.clone(), node.pos)]
        }
        Value::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match &item.value {
                    Value::Str(s) => out.push((s.clone(), item.pos)),
                    _ => sink.error(
                        item.pos,
                        format!(
                            "`{path}[{i}]`: expected a string, found {}{}",
                            item.describe(),
                            yaml11_hint(item)
                        ),
                    ),
                }
            }
            out
        }
        _ => {
            sink.error(
                node.pos,
                format!(
                    "`{path}`: expected a list of strings, found {}",
                    node.describe()
                ),
            );
            Vec::new()
        }
    }
}

pub(crate) fn strings(v: Vec<(String, Pos)>) -> Vec<String> {
    v.into_iter().map(|(s, _)| s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_names() {
        for ok in ["a", "hello", "foo-bar", "x1-y", "A9-b-c"] {
            assert!(is_core_name(ok), "{ok}");
        }
        for bad in ["", "1a", "-a", "a-", "a--b", "a_b", "my_app!", "a.b", "é"] {
            assert!(!is_core_name(bad), "{bad}");
        }
    }
}
