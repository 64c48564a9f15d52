//! `[slurm]`: the resources of each array task, checked against what may stand in an
//! `#SBATCH` line, and sbatch's time-limit forms.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, SweepError};

/// `[slurm]`: the resources of each array task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmConfig {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// GPUs of each task (of each rank, for a data-parallel run): `--gpus-per-task`.
    pub gpus_per_task: u32,
    /// Ranks of a data-parallel run per node (its GPUs per node): a run of N ranks then asks
    /// for `--nodes=N/ranks_per_node` and `--ntasks-per-node=ranks_per_node`; 0: `--ntasks=N`
    /// and Slurm places them.
    pub ranks_per_node: u32,
    /// `--cpus-per-task`; the trainer's threads follow it.
    pub cpus_per_task: u32,
    /// Memory per task, in sbatch's syntax (`16G`, `4000M`).
    pub mem: Option<String>,
    /// Time limit per task, in sbatch's syntax (`HH:MM:SS`, `D-HH:MM:SS`); a run that
    /// reaches it checkpoints on USR1 120 s before and requeues itself.
    pub time: Option<String>,
    /// Array tasks running at once (`--array=0-N%K`); 0: no throttle.
    pub max_parallel: u32,
    /// Further `#SBATCH` directives, each one `--option` or `--option=value`.
    pub extra: Vec<String>,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        SlurmConfig {
            partition: None,
            account: None,
            gpus_per_task: 0,
            ranks_per_node: 0,
            cpus_per_task: 2,
            mem: None,
            time: None,
            max_parallel: 0,
            extra: Vec::new(),
        }
    }
}

/// Characters of a Slurm value that may stand in a `#SBATCH` line as they are.
fn slurm_value_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | ',' | '='))
}

/// Longest time limit accepted: a year, far beyond any cluster's partition limit.
const MAX_SLURM_DAYS: u64 = 365;

/// Seconds of a time limit in one of sbatch's forms — `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`,
/// `D-H:M:S` — with every field but the first bounded by the next unit (seconds and
/// minutes < 60, hours < 24 after a day count) and the whole at most a year. `Err` says
/// which part is wrong.
pub fn slurm_time_seconds(t: &str) -> std::result::Result<u64, String> {
    let num = |s: &str, what: &str| -> std::result::Result<u64, String> {
        if s.is_empty() || s.len() > 9 || !s.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!("has {what} {s:?}, not a number"));
        }
        Ok(s.parse().expect("digits"))
    };
    let below = |v: u64, bound: u64, what: &str| -> std::result::Result<u64, String> {
        if v >= bound {
            return Err(format!("has {what} {v}, above {}", bound - 1));
        }
        Ok(v)
    };
    let (days, clock) = match t.split_once('-') {
        Some((d, rest)) => (Some(num(d, "days")?), rest),
        None => (None, t),
    };
    let parts: Vec<&str> = clock.split(':').collect();
    let secs = match (days, parts.as_slice()) {
        (None, [m]) => num(m, "minutes")? * 60,
        (None, [m, s]) => num(m, "minutes")? * 60 + below(num(s, "seconds")?, 60, "seconds")?,
        (None, [h, m, s]) => {
            num(h, "hours")? * 3600
                + below(num(m, "minutes")?, 60, "minutes")? * 60
                + below(num(s, "seconds")?, 60, "seconds")?
        }
        (Some(d), [h]) => d * 86_400 + below(num(h, "hours")?, 24, "hours")? * 3600,
        (Some(d), [h, m]) => {
            d * 86_400
                + below(num(h, "hours")?, 24, "hours")? * 3600
                + below(num(m, "minutes")?, 60, "minutes")? * 60
        }
        (Some(d), [h, m, s]) => {
            d * 86_400
                + below(num(h, "hours")?, 24, "hours")? * 3600
                + below(num(m, "minutes")?, 60, "minutes")? * 60
                + below(num(s, "seconds")?, 60, "seconds")?
        }
        _ => return Err("is not in one of sbatch's time forms".into()),
    };
    if secs > MAX_SLURM_DAYS * 86_400 {
        return Err(format!("is longer than {MAX_SLURM_DAYS} days"));
    }
    Ok(secs)
}

impl SlurmConfig {
    /// Every value that reaches the sbatch script is checked against a safe alphabet.
    pub fn validate(&self, file: &Path) -> Result<()> {
        for (n, v) in [
            ("partition", &self.partition),
            ("account", &self.account),
            ("mem", &self.mem),
            ("time", &self.time),
        ] {
            if let Some(v) = v {
                if !slurm_value_ok(v) {
                    return Err(SweepError::field(
                        file,
                        format!("slurm.{n}"),
                        format!("{v:?} has characters outside [A-Za-z0-9._:,=-]"),
                    ));
                }
            }
        }
        if let Some(m) = &self.mem {
            let digits = m.trim_end_matches(['K', 'M', 'G', 'T']);
            if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
                return Err(SweepError::field(
                    file,
                    "slurm.mem",
                    format!("{m:?} is not a size such as 16G or 4000M"),
                ));
            }
        }
        if let Some(t) = &self.time {
            let secs = slurm_time_seconds(t).map_err(|why| {
                SweepError::field(
                    file,
                    "slurm.time",
                    format!(
                        "{t:?} {why}; sbatch takes MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or \
                         D-HH:MM:SS (e.g. 04:00:00, 1-12:00:00)"
                    ),
                )
            })?;
            if secs <= 120 {
                return Err(SweepError::field(
                    file,
                    "slurm.time",
                    format!(
                        "{t:?} is {secs} s; it must exceed the 120 s warning a task gets \
                         (--signal=B:USR1@120) to checkpoint before its limit"
                    ),
                ));
            }
        }
        if self.cpus_per_task == 0 {
            return Err(SweepError::field(
                file,
                "slurm.cpus_per_task",
                "must be at least 1",
            ));
        }
        for (i, d) in self.extra.iter().enumerate() {
            let body = d.strip_prefix("--").unwrap_or("");
            if body.is_empty()
                || !body.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                || !slurm_value_ok(body)
            {
                return Err(SweepError::field(
                    file,
                    format!("slurm.extra[{i}]"),
                    format!("{d:?} is not a directive --option or --option=value over [A-Za-z0-9._:,=-]"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_times_take_sbatch_forms_only() {
        // Oracle: sbatch(1), --time: "minutes", "minutes:seconds", "hours:minutes:seconds",
        // "days-hours", "days-hours:minutes" and "days-hours:minutes:seconds".
        for (t, secs) in [
            ("30", 1800),
            ("90", 5400),
            ("10:30", 630),
            ("04:00:00", 14_400),
            ("48:00:00", 172_800),
            ("1-12", 129_600),
            ("1-12:30", 131_400),
            ("1-12:30:15", 131_415),
            ("365-00:00:00", 31_536_000),
        ] {
            assert_eq!(slurm_time_seconds(t), Ok(secs), "{t}");
        }
        for t in [
            "1:00:00:00:00",
            "",
            "1-",
            "-1",
            "1-2-3",
            "10:60",
            "1:60:00",
            "1:00:60",
            "1-24",
            "1-23:60",
            "1-00:00:60",
            "366-00",
            "1::00",
            "1-2:3:4:5",
            "9999999999",
        ] {
            assert!(slurm_time_seconds(t).is_err(), "{t:?} was accepted");
        }
        let bad = SlurmConfig {
            time: Some("1:00:00:00:00".into()),
            ..SlurmConfig::default()
        };
        let e = bad.validate(Path::new("m.toml")).unwrap_err().to_string();
        assert!(e.contains("m.toml") && e.contains("`slurm.time`"), "{e}");
        let short = SlurmConfig {
            time: Some("2".into()),
            ..SlurmConfig::default()
        };
        let e = short.validate(Path::new("m.toml")).unwrap_err().to_string();
        assert!(e.contains("120 s"), "{e}");
    }
}
