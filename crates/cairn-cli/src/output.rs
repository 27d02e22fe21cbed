//! Formatting shared by the commands: hex digests, byte sizes, times, safe
//! names, JSON lines, aligned tables.

use std::fmt::Write as _;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A byte count for people: `512 B`, `1.50 KiB`, `3.00 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = "KiB";
    for next in UNITS.iter().skip(1) {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.2} {unit}")
}

/// A rate for people, e.g. `812.40 MiB/s`.
pub fn rate(bytes_count: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return "-".to_string();
    }
    format!("{}/s", bytes((bytes_count as f64 / secs) as u64))
}

/// `raw / stored`, 1.0 for empty data.
pub fn ratio(raw: u64, stored: u64) -> f64 {
    if stored == 0 {
        1.0
    } else {
        raw as f64 / stored as f64
    }
}

/// Milliseconds as a fractional number, for JSON.
pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// RFC 3339 UTC with microseconds, or `None` for times RFC 3339 cannot hold
/// (before 1970 or after 9999 in a damaged or hostile file), which humantime
/// would refuse to format.
pub fn rfc3339(t: SystemTime) -> Option<String> {
    const YEAR_10000: u64 = 253_402_300_800;
    let since = t.duration_since(UNIX_EPOCH).ok()?;
    (since.as_secs() < YEAR_10000).then(|| humantime::format_rfc3339_micros(t).to_string())
}

/// A name from a file, with control characters escaped so that it cannot
/// move the cursor or rewrite the terminal.
pub fn safe(name: &str) -> String {
    if name.chars().any(char::is_control) {
        name.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
    } else {
        name.to_string()
    }
}

/// Writes one JSON value as a single line to stdout.
///
/// # Errors
/// Serialisation or stdout errors.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// Writes rows as a table whose columns are padded to their widest cell.
/// Columns listed in `right` are right-aligned (numbers).
///
/// # Errors
/// Errors writing to `out`.
pub fn table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>], right: &[usize]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let head: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&head).chain(rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            if right.contains(&i) {
                let _ = write!(line, "{cell:>w$}");
            } else {
                let _ = write!(line, "{cell:<w$}");
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(3 << 20), "3.00 MiB");
        assert_eq!(safe("a\nb"), "a\\nb");
        assert_eq!(rfc3339(UNIX_EPOCH).unwrap(), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(UNIX_EPOCH - Duration::from_secs(1)), None);
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(300_000_000_000)), None);
    }

    #[test]
    fn table_aligns_columns() {
        let mut out = Vec::new();
        table(&mut out, &["name", "n"], &[vec!["a".into(), "10".into()], vec!["long".into(), "5".into()]], &[1])
            .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "name   n\na     10\nlong   5\n");
    }
}
