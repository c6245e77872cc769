//! User-facing failures: what failed, and what to do about it.
//!
//! Commands return `anyhow::Result`; a [`CliError`] anywhere in the chain
//! gives the printed hint. Every error prints as one line on stderr,
//! `error: MESSAGE; hint: HINT`, and exits 1 (clap's usage errors exit 2).

use std::fmt;

/// A failure the user can act on.
#[derive(Debug)]
pub struct CliError {
    /// What failed, naming the thing (file, cluster, app, daemon).
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

impl CliError {
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// Shorthand: `Err(fail("what", "hint"))?`.
pub fn fail(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    CliError::new(message, hint).into()
}

/// The one line printed for `e`: the message (with its causes, when they
/// add something) and the hint of the first [`CliError`] in the chain.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        // Error types often repeat their source in their own message.
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    let mut line = parts.join(": ").replace(['\n', '\r'], " ");
    if let Some(hint) = e.chain().find_map(|c| c.downcast_ref::<CliError>()) {
        line.push_str("; hint: ");
        line.push_str(&hint.hint.replace(['\n', '\r'], " "));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn one_line_with_the_hint() {
        let e: anyhow::Error = fail("cannot reach console at http://x", "check the URL");
        assert_eq!(
            one_line(&e),
            "cannot reach console at http://x; hint: check the URL"
        );
        let e = Err::<(), _>(fail("token expired\nat 3", "run `lain login`"))
            .context("cannot list apps")
            .unwrap_err();
        assert_eq!(
            one_line(&e),
            "cannot list apps: token expired at 3; hint: run `lain login`"
        );
        let e = anyhow::anyhow!("plain");
        assert_eq!(one_line(&e), "plain");
    }
}
