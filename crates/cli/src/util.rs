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
use synthscale_model::ModelError;
use synthscale_report::ReportError;
use synthscale_sweep::SweepError;
use synthscale_synth::SynthError;
use synthscale_train::TrainError;

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
/// another process holds, else 1. The first cause in the chain that is one of the stage
/// crates' errors, or [`BadInput`], decides.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(TrainError::Locked { .. }) = cause.downcast_ref::<TrainError>() {
            return synthscale_train::EXIT_LOCKED;
        }
        if let Some(bad) = bad_input(cause) {
            return if bad { 2 } else { 1 };
        }
    }
    1
}

/// Whether `cause` is bad input, when it is an error type that knows: each stage crate's
/// error (through its `is_bad_input`) and the binary's own [`BadInput`]; `None` for any
/// other error.
fn bad_input(cause: &(dyn std::error::Error + 'static)) -> Option<bool> {
    fn check<E: std::error::Error + 'static>(
        cause: &(dyn std::error::Error + 'static),
        is_bad_input: fn(&E) -> bool,
    ) -> Option<bool> {
        cause.downcast_ref::<E>().map(is_bad_input)
    }
    check(cause, TrainError::is_bad_input)
        .or_else(|| check(cause, ModelError::is_bad_input))
        .or_else(|| check(cause, DataError::is_bad_input))
        .or_else(|| check(cause, SweepError::is_bad_input))
        .or_else(|| check(cause, SynthError::is_bad_input))
        .or_else(|| check(cause, FitError::is_bad_input))
        .or_else(|| check(cause, ReportError::is_bad_input))
        .or_else(|| check(cause, |_: &BadInput| true))
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
