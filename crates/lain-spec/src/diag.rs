//! Diagnostics: every problem found in a lain.yaml, with its position.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The file is rejected.
    Error,
    /// The file is accepted (as LAIN accepts it), but something in it is
    /// probably not what the author meant.
    Warning,
}

/// One problem at one place in one file.
///
/// `line` and `col` are 1-based and point at the offending node (for a
/// missing key: at the mapping that lacks it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}", render_one(self))]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub severity: Severity,
    pub message: String,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// `file:line:col: message`; warnings say so, so that a list of mixed
/// diagnostics stays readable when printed.
fn render_one(d: &Diagnostic) -> String {
    match d.severity {
        Severity::Error => format!("{}:{}:{}: {}", d.file, d.line, d.col, d.message),
        Severity::Warning => format!("{}:{}:{}: warning: {}", d.file, d.line, d.col, d.message),
    }
}

/// The diagnostics of a rejected file: at least one error, plus any
/// warnings, sorted by position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}", render_all(&self.0))]
pub struct Diagnostics(pub Vec<Diagnostic>);

fn render_all(all: &[Diagnostic]) -> String {
    all.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl Diagnostics {
    /// The errors only (a rejected file may carry warnings too).
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.is_error())
    }

    /// The warnings only.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| !d.is_error())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// A position in the source, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    pub const START: Pos = Pos { line: 1, col: 1 };
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// Collects diagnostics for one file while loading and validating it, so
/// that one bad key never hides the next one.
#[derive(Debug)]
pub(crate) struct Sink {
    file: String,
    items: Vec<Diagnostic>,
    /// Problems past [`MAX_DIAGNOSTICS`]: counted, not kept.
    dropped_errors: usize,
    dropped_warnings: usize,
}

/// Most diagnostics kept for one file. A garbage file can hold a hundred
/// thousand bad keys; nobody reads that many, and building each message
/// (with its "did you mean") costs time a hostile upload should not get.
pub const MAX_DIAGNOSTICS: usize = 200;

impl Sink {
    pub(crate) fn new(file: &str) -> Self {
        Sink {
            file: file.to_owned(),
            items: Vec::new(),
            dropped_errors: 0,
            dropped_warnings: 0,
        }
    }

    pub(crate) fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.push(pos, Severity::Error, message.into());
    }

    pub(crate) fn warn(&mut self, pos: Pos, message: impl Into<String>) {
        self.push(pos, Severity::Warning, message.into());
    }

    fn push(&mut self, pos: Pos, severity: Severity, message: String) {
        if self.is_full() {
            match severity {
                Severity::Error => self.dropped_errors += 1,
                Severity::Warning => self.dropped_warnings += 1,
            }
            return;
        }
        self.items.push(Diagnostic {
            file: self.file.clone(),
            line: pos.line.max(1),
            col: pos.col.max(1),
            severity,
            message,
        });
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.dropped_errors > 0 || self.items.iter().any(Diagnostic::is_error)
    }

    /// Keeps positions inside `text`: the scanner reports an unexpected end
    /// of input on the line after a last line that has no line break.
    pub(crate) fn clamp_to(&mut self, text: &str) {
        let breaks = text.replace("\r\n", "\n").matches(['\n', '\r']).count();
        let last_line = breaks + 1;
        let last_len = text
            .rsplit(['\n', '\r'])
            .next()
            .map_or(0, |l| l.chars().count());
        for d in &mut self.items {
            if d.line > last_line {
                d.line = last_line;
                d.col = last_len + 1;
            }
        }
    }

    /// A point to [`Sink::forget_since`] back to.
    pub(crate) fn mark(&self) -> usize {
        self.items.len()
    }

    /// Drops what was reported since `mark` at any of `at`: a caller that
    /// already explained a node silences what later checks say about it.
    pub(crate) fn forget_since(&mut self, mark: usize, at: &std::collections::HashSet<Pos>) {
        if at.is_empty() || mark >= self.items.len() {
            return;
        }
        let later = self.items.split_off(mark);
        self.items.extend(later.into_iter().filter(|d| {
            !at.contains(&Pos {
                line: d.line,
                col: d.col,
            })
        }));
    }

    /// Once full, messages are dropped: callers skip costly extras.
    pub(crate) fn is_full(&self) -> bool {
        self.items.len() >= MAX_DIAGNOSTICS
    }

    /// `" (did you mean `x`?)"`, unless the sink is full anyway.
    pub(crate) fn hint(&self, word: &str, candidates: &[&str]) -> String {
        if self.is_full() {
            String::new()
        } else {
            crate::suggest::hint(word, candidates)
        }
    }

    /// All diagnostics in source order; errors before warnings at the same
    /// spot (stable sort keeps discovery order otherwise). A final note
    /// counts what was dropped past the limit.
    pub(crate) fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.items
            .sort_by_key(|d| (d.line, d.col, d.severity == Severity::Warning));
        let dropped = self.dropped_errors + self.dropped_warnings;
        if dropped > 0 {
            let (line, col) = self.items.last().map_or((1, 1), |d| (d.line, d.col));
            self.items.push(Diagnostic {
                file: self.file.clone(),
                line,
                col,
                severity: if self.dropped_errors > 0 {
                    Severity::Error
                } else {
                    Severity::Warning
                },
                message: format!(
                    "{dropped} more problems ({} errors, {} warnings) are not shown: at most \
                     {MAX_DIAGNOSTICS} are reported per file",
                    self.dropped_errors, self.dropped_warnings
                ),
            });
        }
        self.items
    }
}
