//! Printing: aligned tables or JSON on standard output, notices on standard error, colours only
//! on a terminal (and never with `NO_COLOR`), times in the local zone with "in 2 h" hints.

use std::io::{IsTerminal as _, Write as _};

use chrono::{DateTime, Local, Utc};
use serde::Serialize;

use crate::error::CliError;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns and sentences for people.
    Table,
    /// JSON for scripts (the API's own shapes).
    Json,
}

impl Format {
    /// `table` or `json`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "table" => Some(Format::Table),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// What the terminal can do.
#[derive(Debug, Clone, Copy)]
pub struct Term {
    /// Standard input is a terminal (prompts are allowed).
    pub stdin_tty: bool,
    /// Standard error is a terminal (spinners are allowed).
    pub stderr_tty: bool,
    /// Colours on standard output.
    pub color: bool,
}

impl Term {
    /// Detects the terminal; `no_color` (the flag) and `NO_COLOR` turn colours off.
    pub fn detect(no_color: bool) -> Self {
        let env_no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        let stdout_tty = std::io::stdout().is_terminal();
        Self {
            stdin_tty: std::io::stdin().is_terminal(),
            stderr_tty: std::io::stderr().is_terminal() && !dumb,
            color: stdout_tty && !no_color && !env_no_color && !dumb,
        }
    }

    /// `text` in a colour chosen for a reservation status.
    pub fn status(&self, status: &str) -> String {
        let code = match status {
            "active" => "32",
            "queued" | "preparing" => "33",
            "failed" => "31",
            "expired" | "cancelled" | "revoked" => "2",
            _ => return status.to_owned(),
        };
        self.paint(code, status)
    }

    /// `text` in bold.
    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// Writes `text` (and a newline) to standard output. A closed pipe (`gpu-dev list | head`) is
/// not an error.
pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}

/// Writes `value` as pretty JSON to standard output.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Failed(format!("cannot encode the output: {e}")))?;
    print(&text);
    Ok(())
}

/// Writes a notice line to standard error.
pub fn notice(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}

/// Columns aligned with two spaces between them.
#[derive(Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<(String, String)>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row of plain cells.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows
            .push(cells.into_iter().map(|c| (c.clone(), c)).collect());
    }

    /// Adds a row whose cells are `(plain, painted)`: widths come from the plain text.
    pub fn painted_row(&mut self, cells: Vec<(String, String)>) {
        self.rows.push(cells);
    }

    /// The table as text (headers in bold on a colour terminal).
    pub fn render(&self, term: &Term) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, (plain, _)) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(plain.chars().count());
            }
        }
        let line = |cells: Vec<(String, String)>| {
            let mut out = String::new();
            let last = cells.len().saturating_sub(1);
            for (i, (plain, painted)) in cells.into_iter().enumerate().take(columns) {
                out.push_str(&painted);
                if i < last {
                    let pad = widths[i] - plain.chars().count() + 2;
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.trim_end().to_owned()
        };
        let mut lines = vec![line(
            self.headers
                .iter()
                .map(|h| (h.clone(), term.bold(h)))
                .collect(),
        )];
        for row in &self.rows {
            lines.push(line(row.clone()));
        }
        lines.join("\n")
    }
}

/// A time in the local zone, `2026-01-31 14:05`.
pub fn time(t: DateTime<Utc>) -> String {
    t.with_timezone(&Local).format("%Y-%m-%d %H:%M").to_string()
}

/// A time with how far it is from `now`: `2026-01-31 14:05 (in 1 h 55 min)`.
pub fn time_rel(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (t - now).num_seconds();
    let span = duration(secs.unsigned_abs());
    if secs == 0 {
        format!("{} (just now)", time(t))
    } else if secs > 0 {
        format!("{} (in {span})", time(t))
    } else {
        format!("{} ({span} ago)", time(t))
    }
}

/// `1 h 5 min`, `45 s`, `3 d 2 h`.
pub fn duration(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs} s"),
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, 0, _) => format!("{d} d"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

/// Hours as people write them: `2`, `1.5`, `0.25`.
pub fn hours(h: f64) -> String {
    let s = format!("{h:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// An optional value, or `-`.
pub fn or_dash(v: Option<impl ToString>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> Term {
        Term {
            stdin_tty: false,
            stderr_tty: false,
            color: false,
        }
    }

    #[test]
    fn columns_line_up_and_lines_have_no_trailing_space() {
        let mut t = Table::new(&["ID", "STATUS", "NAME"]);
        t.row(vec!["1a2b3c4d".into(), "active".into(), "-".into()]);
        t.row(vec!["x".into(), "queued".into(), "long name".into()]);
        assert_eq!(
            t.render(&plain()),
            "ID        STATUS  NAME\n1a2b3c4d  active  -\nx         queued  long name"
        );
    }

    #[test]
    fn painted_cells_are_measured_without_their_colour_codes() {
        let term = Term {
            color: true,
            ..plain()
        };
        let mut t = Table::new(&["S", "N"]);
        t.painted_row(vec![
            ("active".into(), term.status("active")),
            ("1".into(), "1".into()),
        ]);
        let out = t.render(&term);
        assert!(out.ends_with("\x1b[32mactive\x1b[0m  1"), "{out:?}");
    }

    #[test]
    fn durations_and_hours_read_naturally() {
        assert_eq!(duration(45), "45 s");
        assert_eq!(duration(600), "10 min");
        assert_eq!(duration(7200), "2 h");
        assert_eq!(duration(3900), "1 h 5 min");
        assert_eq!(duration(90_000), "1 d 1 h");
        assert_eq!(hours(2.0), "2");
        assert_eq!(hours(1.5), "1.5");
        assert_eq!(hours(0.25), "0.25");
    }
}
