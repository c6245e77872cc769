//! Progress on builds, pushes and rollouts: indicatif bars when stdout is a
//! terminal, plain lines when it is not (CI logs, pipes), so the same
//! command reads well in both.

use std::fmt::Display;
use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where progress goes. Cheap to clone.
#[derive(Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Progress {
    /// Bars when stdout is a terminal, plain lines otherwise.
    pub fn new() -> Progress {
        if std::io::stdout().is_terminal() {
            Progress {
                multi: Some(MultiProgress::with_draw_target(ProgressDrawTarget::stdout())),
            }
        } else {
            Progress::plain()
        }
    }

    /// Plain lines only.
    pub fn plain() -> Progress {
        Progress { multi: None }
    }

    pub fn is_tty(&self) -> bool {
        self.multi.is_some()
    }

    /// One line of output, above any bars.
    pub fn line(&self, msg: impl Display) {
        match &self.multi {
            Some(m) => {
                if m.println(msg.to_string()).is_err() {
                    println!("{msg}");
                }
            }
            None => println!("{msg}"),
        }
    }

    /// A bar of `len` steps (bytes, layers); plain mode prints only its
    /// finish line.
    pub fn bar(&self, len: u64, prefix: impl Into<String>) -> Bar {
        let prefix = prefix.into();
        let pb = self.multi.as_ref().map(|m| {
            let pb = m.add(ProgressBar::new(len));
            pb.set_style(
                ProgressStyle::with_template("{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            pb.set_prefix(prefix.clone());
            pb
        });
        Bar { pb, prefix }
    }

    /// A spinner with a message that changes; plain mode prints each new
    /// message as a line.
    pub fn spinner(&self, prefix: impl Into<String>) -> Bar {
        let prefix = prefix.into();
        let pb = self.multi.as_ref().map(|m| {
            let pb = m.add(ProgressBar::new_spinner());
            pb.set_style(
                ProgressStyle::with_template("{spinner} {prefix} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            pb.set_prefix(prefix.clone());
            pb.enable_steady_tick(Duration::from_millis(120));
            pb
        });
        Bar { pb, prefix }
    }
}

/// A bar or spinner; in plain mode only messages and the finish print.
pub struct Bar {
    pb: Option<ProgressBar>,
    prefix: String,
}

impl Bar {
    pub fn set_position(&self, pos: u64) {
        if let Some(pb) = &self.pb {
            pb.set_position(pos);
        }
    }

    /// A new status: shown on the bar, or printed as a line in plain mode.
    pub fn message(&self, msg: impl Display) {
        match &self.pb {
            Some(pb) => pb.set_message(msg.to_string()),
            None => println!("{} {msg}", self.prefix),
        }
    }

    /// Ends the bar keeping its last message (plain mode printed it
    /// already).
    pub fn done(self) {
        if let Some(pb) = &self.pb {
            pb.finish();
        }
    }

    /// Ends the bar with a last line (printed in both modes).
    pub fn finish(self, msg: impl Display) {
        match &self.pb {
            Some(pb) => pb.finish_with_message(msg.to_string()),
            None => println!("{} {msg}", self.prefix),
        }
    }
}
