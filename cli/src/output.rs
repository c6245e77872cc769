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

/// A plain text table: left-aligned columns two spaces apart, the header
/// in bold on a terminal.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<const N: usize>(header: [&str; N]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, without styling.
    pub fn render(&self) -> (String, Vec<String>) {
        let cols = self.header.len();
        let mut width = vec![0; cols];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (i, cell) in row.iter().enumerate().take(cols) {
                width[i] = width[i].max(cell.chars().count());
            }
        }
        let line = |row: &Vec<String>| {
            let mut s = String::new();
            for (i, cell) in row.iter().enumerate().take(cols) {
                if i + 1 == cols {
                    s.push_str(cell);
                } else {
                    s.push_str(&format!("{cell:<w$}  ", w = width[i]));
                }
            }
            s.trim_end().to_owned()
        };
        (line(&self.header), self.rows.iter().map(line).collect())
    }

    pub fn print(&self) {
        let (header, rows) = self.render();
        let bold = anstyle::Style::new().bold();
        anstream::println!("{bold}{header}{bold:#}");
        for r in rows {
            println!("{r}");
        }
    }
}

/// A JSON value as a table cell: strings bare, null as `-`.
pub fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "-".into(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn time_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Bytes as `512m`, `2g` (the lain.yaml way), exact when it can be.
pub fn bytes(b: u64) -> String {
    const G: u64 = 1 << 30;
    const M: u64 = 1 << 20;
    if b >= G && b.is_multiple_of(G) {
        format!("{}g", b / G)
    } else if b >= M {
        format!("{}m", b / M)
    } else {
        format!("{b}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let mut t = Table::new(["NAME", "STATE"]);
        t.row(vec!["web".into(), "running".into()]);
        t.row(vec!["worker.queue".into(), "-".into()]);
        let (h, rows) = t.render();
        assert_eq!(h, "NAME          STATE");
        assert_eq!(rows, ["web           running", "worker.queue  -"]);
    }

    #[test]
    fn times_and_sizes() {
        assert_eq!(time_ms(0), "1970-01-01 00:00:00");
        assert_eq!(time_ms(1_700_000_000_000), "2023-11-14 22:13:20");
        assert_eq!(time_ms(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(bytes(2 << 30), "2g");
        assert_eq!(bytes(512 << 20), "512m");
        assert_eq!(bytes(100), "100");
    }
}
