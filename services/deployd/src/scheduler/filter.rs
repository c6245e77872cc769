//! Placement filters from lain.yaml, matched against node labels.
//!
//! LAIN handed `filters` to Docker Swarm, where `constraint:KEY==VALUE`
//! matches the node's labels (and `node` its name) and `affinity:...`
//! matches the containers or images already on a node. deployd keeps the
//! constraint half with Swarm's meaning: `KEY` is a node label, `node` is
//! the node's name, `==` requires the value and `!=` rejects it (a node
//! without the label passes `!=`). Affinity has no equivalent here: deployd
//! does not track images per node (every node pulls from the registry) and
//! container affinity would make one proc's placement depend on another's
//! in the same pass; so `affinity:` is refused with a message that says
//! so, rather than being silently ignored or given another meaning.
//! Swarm's soft (`==~`) and pattern (`*`, `/regex/`) values are refused
//! the same way, so that no filter ever means less than it says.

use std::collections::BTreeMap;
use std::fmt;

/// The key that matches the node's name instead of a label, as in Swarm.
pub const NODE_NAME_KEY: &str = "node";

/// Why a filter string is not a filter deployd can honour.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error(
        "`{raw}` is not a filter: expected `constraint:KEY==VALUE` or `constraint:KEY!=VALUE`"
    )]
    Malformed { raw: String },
    #[error(
        "`{raw}`: unknown filter kind `{kind}`; expected `constraint:KEY==VALUE` or \
         `constraint:KEY!=VALUE`"
    )]
    UnknownKind { raw: String, kind: String },
    #[error(
        "`{raw}`: affinity filters are not supported: they matched the containers and images \
         already on a Docker Swarm node, which deployd does not schedule by; put a label on the \
         nodes and use `constraint:LABEL==VALUE`"
    )]
    Affinity { raw: String },
    #[error("`{raw}`: the {part} is empty")]
    Empty { raw: String, part: &'static str },
    #[error("`{raw}`: whitespace is not allowed in a filter")]
    Whitespace { raw: String },
    #[error(
        "`{raw}`: soft constraints (`==~`, `!=~`) are not supported; deployd only places \
         where a constraint holds"
    )]
    Soft { raw: String },
    #[error(
        "`{raw}`: patterns (`*`, `?`, `/regex/`) are not supported; give the exact label value"
    )]
    Pattern { raw: String },
    #[error("`{raw}`: more than one `==` or `!=`")]
    ExtraOperator { raw: String },
}

/// One `constraint:KEY==VALUE` or `constraint:KEY!=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Filter {
    pub key: String,
    /// `true` for `==`, `false` for `!=`.
    pub equal: bool,
    pub value: String,
}

impl Filter {
    /// Parses a lain.yaml filter string. Never panics.
    pub fn parse(raw: &str) -> Result<Filter, FilterError> {
        let err_raw = || raw.to_owned();
        let text = raw.trim();
        let Some((kind, rest)) = text.split_once(':') else {
            return Err(FilterError::Malformed { raw: err_raw() });
        };
        match kind {
            "constraint" => {}
            "affinity" => return Err(FilterError::Affinity { raw: err_raw() }),
            _ => {
                return Err(FilterError::UnknownKind {
                    raw: err_raw(),
                    kind: kind.to_owned(),
                })
            }
        }
        if rest.chars().any(char::is_whitespace) {
            return Err(FilterError::Whitespace { raw: err_raw() });
        }
        // The first operator splits: a key never contains `=` or `!=`.
        let op_at = match (rest.find("=="), rest.find("!=")) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => return Err(FilterError::Malformed { raw: err_raw() }),
        };
        let equal = rest[op_at..].starts_with("==");
        let (key, value) = (&rest[..op_at], &rest[op_at + 2..]);
        if key.is_empty() {
            return Err(FilterError::Empty {
                raw: err_raw(),
                part: "label key",
            });
        }
        if value.is_empty() {
            return Err(FilterError::Empty {
                raw: err_raw(),
                part: "value",
            });
        }
        if value.starts_with('~') {
            return Err(FilterError::Soft { raw: err_raw() });
        }
        if value.contains("==") || value.contains("!=") || value.starts_with('=') {
            return Err(FilterError::ExtraOperator { raw: err_raw() });
        }
        if value.contains(['*', '?']) || (value.len() > 1 && value.starts_with('/')) {
            return Err(FilterError::Pattern { raw: err_raw() });
        }
        Ok(Filter {
            key: key.to_owned(),
            equal,
            value: value.to_owned(),
        })
    }

    /// Whether a node with this name and labels passes the filter.
    pub fn matches(&self, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
        let actual = if self.key == NODE_NAME_KEY {
            Some(node_name)
        } else {
            labels.get(&self.key).map(String::as_str)
        };
        (actual == Some(self.value.as_str())) == self.equal
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.equal { "==" } else { "!=" };
        write!(f, "constraint:{}{op}{}", self.key, self.value)
    }
}

/// The filters of one proc, sorted and deduplicated so that procs with the
/// same filters in another order share one pre-filtered node set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FilterSet(Vec<Filter>);

impl FilterSet {
    /// Parses every string; the first bad one is the error.
    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<FilterSet, FilterError> {
        let mut filters = raw
            .iter()
            .map(|s| Filter::parse(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        filters.sort();
        filters.dedup();
        Ok(FilterSet(filters))
    }

    pub fn filters(&self) -> &[Filter] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a node passes every filter.
    pub fn matches(&self, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|f| f.matches(node_name, labels))
    }
}

impl fmt::Display for FilterSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, filter) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{filter}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parses_constraints() {
        assert_eq!(
            Filter::parse("constraint:node==n1"),
            Ok(Filter {
                key: "node".into(),
                equal: true,
                value: "n1".into()
            })
        );
        assert_eq!(
            Filter::parse(" constraint:com.example.group!=db "),
            Ok(Filter {
                key: "com.example.group".into(),
                equal: false,
                value: "db".into()
            })
        );
    }

    #[test]
    fn equal_and_not_equal_match_labels_and_node_name() {
        let l = labels(&[("group", "db"), ("zone", "a")]);
        let f = |s: &str| Filter::parse(s).unwrap();
        assert!(f("constraint:group==db").matches("n1", &l));
        assert!(!f("constraint:group==web").matches("n1", &l));
        assert!(!f("constraint:group!=db").matches("n1", &l));
        assert!(f("constraint:group!=web").matches("n1", &l));
        // A missing label fails == and passes !=, as in Swarm.
        assert!(!f("constraint:rack==r1").matches("n1", &l));
        assert!(f("constraint:rack!=r1").matches("n1", &l));
        assert!(f("constraint:node==n1").matches("n1", &l));
        assert!(f("constraint:node!=n2").matches("n1", &l));
        assert!(!f("constraint:node==n2").matches("n1", &l));
    }

    #[test]
    fn malformed_filters_are_clear_errors() {
        let cases: &[(&str, &str)] = &[
            ("", "is not a filter"),
            ("node==n1", "is not a filter"),
            ("constraint:node", "is not a filter"),
            ("constraint:node=n1", "is not a filter"),
            ("constraint:==n1", "label key is empty"),
            ("constraint:node==", "value is empty"),
            ("constraint:node!=", "value is empty"),
            ("label:node==n1", "unknown filter kind `label`"),
            (
                "affinity:container==web",
                "affinity filters are not supported",
            ),
            ("affinity:image==redis", "constraint:LABEL==VALUE"),
            ("constraint:node==~n1", "soft constraints"),
            ("constraint:node==n*", "patterns"),
            ("constraint:region==/us-.*/", "patterns"),
            ("constraint:node==a==b", "more than one"),
            ("constraint:node===a", "more than one"),
            ("constraint:node == n1", "whitespace"),
        ];
        for (raw, expected) in cases {
            let err = Filter::parse(raw).expect_err(raw);
            let msg = err.to_string();
            assert!(msg.contains(expected), "{raw:?} gave {msg:?}");
        }
    }

    #[test]
    fn filter_sets_are_normalised() {
        let a = FilterSet::parse(&["constraint:b==2", "constraint:a==1", "constraint:b==2"]);
        let b = FilterSet::parse(&["constraint:a==1", "constraint:b==2"]);
        assert_eq!(a, b);
        assert_eq!(
            a.map(|s| s.to_string()),
            Ok("constraint:a==1, constraint:b==2".to_owned())
        );
        assert!(FilterSet::parse(&["constraint:a==1", "nope"]).is_err());
    }
}
