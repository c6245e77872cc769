//! Output conventions shared by every command.

/// `-o` / `--output` on read commands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON document on stdout, for scripts.
    Json,
}

/// Prints a failure as one line on stderr, `error: MESSAGE; hint: HINT`,
/// red when stderr is a terminal (and `NO_COLOR` is not set).
pub fn print_error(e: &anyhow::Error) {
    let red = anstyle::Style::new()
        .bold()
        .fg_color(Some(anstyle::AnsiColor::Red.into()));
    anstream::eprintln!("{red}error:{red:#} {}", crate::error::one_line(e));
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
