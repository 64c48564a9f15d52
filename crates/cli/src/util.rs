//! Small helpers of the binary: exit codes, number parsing, progress display.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use indicatif::{ProgressBar, ProgressStyle};
use synthscale_data::DataError;
use synthscale_fit::FitError;

/// A usage error found by the binary itself (exit code 2).
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// 2 for bad input anywhere in the error's chain, `EXIT_LOCKED` (73) for a run directory
/// another process holds, else 1.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(t) = cause.downcast_ref::<synthscale_train::TrainError>() {
            if matches!(t, synthscale_train::TrainError::Locked { .. }) {
                return synthscale_train::EXIT_LOCKED;
            }
            return if t.is_bad_input() { 2 } else { 1 };
        }
        if let Some(m) = cause.downcast_ref::<synthscale_model::ModelError>() {
            return if m.is_bad_input() { 2 } else { 1 };
        }
        if let Some(d) = cause.downcast_ref::<DataError>() {
            return if d.is_bad_input() { 2 } else { 1 };
        }
        if let Some(s) = cause.downcast_ref::<synthscale_sweep::SweepError>() {
            return if s.is_bad_input() { 2 } else { 1 };
        }
        if let Some(s) = cause.downcast_ref::<synthscale_synth::SynthError>() {
            return if s.is_bad_input() { 2 } else { 1 };
        }
        if let Some(f) = cause.downcast_ref::<FitError>() {
            return if f.is_bad_input() { 2 } else { 1 };
        }
        if let Some(r) = cause.downcast_ref::<synthscale_report::ReportError>() {
            return if r.is_bad_input() { 2 } else { 1 };
        }
        if cause.downcast_ref::<BadInput>().is_some() {
            return 2;
        }
    }
    1
}

/// Exit code 0 when a check passed, 1 when it did not.
pub fn success_if(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The error and its causes on one line, `a: b: c`, each said once: a cause whose text
/// its parent already includes (an I/O error a message quotes) is not repeated.
pub fn error_text(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// A flag that SIGTERM, SIGUSR1 or SIGINT sets: the trainer checkpoints and stops on it,
/// a launcher stops starting runs and passes SIGTERM to its trainers.
pub fn stop_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGUSR1,
        signal_hook::consts::SIGINT,
    ] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    Ok(stop)
}

/// Parses a count such as `20000`, `20_000`, `250k`, `10M`, `1.5B` or `2e9`.
pub fn parse_count(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('m' | 'M') => (&t[..t.len() - 1], 1e6),
        Some('b' | 'B' | 'g' | 'G') => (&t[..t.len() - 1], 1e9),
        Some('t' | 'T') => (&t[..t.len() - 1], 1e12),
        _ => (t.as_str(), 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a count (examples: 20000, 250k, 10M, 1.5B)"))?;
    let v = v * mult;
    if !(v.is_finite() && v > 0.0 && v < 1.8e19) {
        return Err(format!("{s:?} must be a positive count"));
    }
    if v.fract() != 0.0 {
        return Err(format!("{s:?} is not a whole number"));
    }
    Ok(v as u64)
}

/// A spinner on a terminal; hidden otherwise (callers then print plain lines).
pub fn spinner() -> ProgressBar {
    if std::io::stderr().is_terminal() {
        let pb = ProgressBar::new_spinner();
        pb.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                .expect("valid template"),
        );
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    } else {
        ProgressBar::hidden()
    }
}

/// Whether plain progress lines should be printed (no terminal to draw a bar on).
pub fn plain_logs() -> bool {
    !std::io::stderr().is_terminal()
}

/// 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parse_with_suffixes() {
        assert_eq!(parse_count("20000"), Ok(20_000));
        assert_eq!(parse_count("20_000"), Ok(20_000));
        assert_eq!(parse_count("250k"), Ok(250_000));
        assert_eq!(parse_count("1.5B"), Ok(1_500_000_000));
        assert_eq!(parse_count("2e6"), Ok(2_000_000));
        assert!(parse_count("0").is_err());
        assert!(parse_count("-5").is_err());
        assert!(parse_count("1.5").is_err());
        assert!(parse_count("ten").is_err());
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
