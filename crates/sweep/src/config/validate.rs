//! The static checks of `[sweep]`: what can be checked without the data (non-empty grids,
//! names, shares, bounds); `plan` checks the rest against the data.

use std::path::Path;

use synthscale_data::config::is_safe_name;

use super::run_rule::MicroBatch;
use super::sweep::SweepConfig;
use crate::error::{Result, SweepError};

impl SweepConfig {
    /// Checks what can be checked without the data: non-empty grids, names, shares, bounds.
    pub fn validate(&self, file: &Path) -> Result<()> {
        if self.sizes.is_empty() {
            return Err(SweepError::field(
                file,
                "sweep.sizes",
                "the grid has no sizes; give at least one",
            ));
        }
        for (i, s) in self.sizes.iter().enumerate() {
            if let Some(r) = s.ranks.filter(|r| !(1..=4096).contains(r)) {
                return Err(SweepError::field(
                    file,
                    format!("sweep.sizes[{i}].ranks"),
                    format!("{r} processes per run; give 1 to 4096"),
                ));
            }
        }
        if self.budgets.is_empty() {
            return Err(SweepError::field(
                file,
                "sweep.budgets",
                "the grid has no budgets; give at least one",
            ));
        }
        if self.mixtures.is_empty() {
            return Err(SweepError::field(
                file,
                "sweep.mixtures",
                "the grid has no mixtures; give at least one",
            ));
        }
        if self.seeds.is_empty() {
            return Err(SweepError::field(
                file,
                "sweep.seeds",
                "the grid has no seeds; give at least one",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, s) in self.sizes.iter().enumerate() {
            let f = format!("sweep.sizes[{i}]");
            let explicit = s.d_model.is_some() && s.n_layers.is_some() && s.n_heads.is_some();
            let ways = s.preset.is_some() as u8 + s.params.is_some() as u8;
            if ways > 1 || (ways == 0 && !explicit) {
                return Err(SweepError::field(
                    file,
                    f,
                    "give exactly one of preset, params, or d_model + n_layers + n_heads",
                ));
            }
            let label = s.label();
            if !is_safe_name(&label) {
                return Err(SweepError::field(
                    file,
                    format!("{f}.name"),
                    format!("{label:?} is not a safe name (letters, digits, '.', '_', '-')"),
                ));
            }
            if !seen.insert(label.clone()) {
                return Err(SweepError::field(
                    file,
                    f,
                    format!("size name {label:?} is used twice"),
                ));
            }
        }
        self.check_init_from(file)?;
        let mut seen = std::collections::BTreeSet::new();
        for (i, b) in self.budgets.iter().enumerate() {
            let f = format!("sweep.budgets[{i}]");
            match (b.tokens, b.tokens_per_param) {
                (Some(t), None) if t > 0 => {}
                (None, Some(r)) if r.is_finite() && r > 0.0 => {}
                (Some(_), Some(_)) | (None, None) => {
                    return Err(SweepError::field(
                        file,
                        f,
                        "give exactly one of tokens or tokens_per_param",
                    ))
                }
                _ => return Err(SweepError::field(file, f, "the budget must be positive")),
            }
            if !seen.insert(b.label()) {
                return Err(SweepError::field(
                    file,
                    f,
                    format!("budget {} is listed twice", b.label()),
                ));
            }
        }
        for (name, shares) in &self.mixtures {
            let f = format!("sweep.mixtures.{name}");
            if !is_safe_name(name) {
                return Err(SweepError::field(
                    file,
                    f,
                    "a mixture name must be a safe name (letters, digits, '.', '_', '-')",
                ));
            }
            if shares.values().any(|v| !(v.is_finite() && *v >= 0.0)) {
                return Err(SweepError::field(file, f, "shares must be finite and ≥ 0"));
            }
            let sum: f64 = shares.values().sum();
            if (sum - 1.0).abs() > 1e-6 {
                return Err(SweepError::field(
                    file,
                    f,
                    format!("shares sum to {sum}, not 1 (within 1e-6)"),
                ));
            }
        }
        let mut seeds = self.seeds.clone();
        seeds.sort_unstable();
        seeds.dedup();
        if seeds.len() != self.seeds.len() {
            return Err(SweepError::field(
                file,
                "sweep.seeds",
                "a seed is listed twice",
            ));
        }
        for (i, s) in self.sizes.iter().enumerate() {
            if let Some(own) = &s.seeds {
                let f = format!("sweep.sizes[{i}].seeds");
                if own.is_empty() {
                    return Err(SweepError::field(
                        file,
                        f,
                        "an empty list; give at least one seed",
                    ));
                }
                let mut o = own.clone();
                o.sort_unstable();
                o.dedup();
                if o.len() != own.len() {
                    return Err(SweepError::field(file, f, "a seed is listed twice"));
                }
            }
        }
        let r = &self.run_rule;
        let rule_field = |n: &str| format!("sweep.run_rule.{n}");
        if let Some(lr) = r.lr {
            if !(lr.is_finite() && lr > 0.0 && lr < 10.0) {
                return Err(SweepError::field(
                    file,
                    rule_field("lr"),
                    format!("{lr} is outside (0, 10)"),
                ));
            }
        }
        for (n, v) in [
            ("lr_coefficient", r.lr_coefficient),
            ("batch_coefficient", r.batch_coefficient),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(SweepError::field(
                    file,
                    rule_field(n),
                    format!("{v} must be > 0"),
                ));
            }
        }
        for (n, v) in [
            ("lr_exponent", r.lr_exponent),
            ("batch_exponent", r.batch_exponent),
        ] {
            if !(v.is_finite() && v.abs() <= 2.0) {
                return Err(SweepError::field(
                    file,
                    rule_field(n),
                    format!("{v} is outside [-2, 2]"),
                ));
            }
        }
        if r.batch_tokens == Some(0) {
            return Err(SweepError::field(
                file,
                rule_field("batch_tokens"),
                "must be at least 1",
            ));
        }
        for (n, v) in [
            ("min_steps", r.min_steps),
            (
                "micro_batch_size",
                match r.micro_batch_size {
                    MicroBatch::Fixed(n) => n as u64,
                    MicroBatch::Auto => 1,
                },
            ),
            ("evals_per_run", r.evals_per_run),
            ("eval_max_tokens", r.eval_max_tokens),
            ("checkpoints_per_run", r.checkpoints_per_run),
        ] {
            if v == 0 {
                return Err(SweepError::field(file, rule_field(n), "must be at least 1"));
            }
        }
        if !(0.0..1.0).contains(&r.warmup_fraction) {
            return Err(SweepError::field(
                file,
                rule_field("warmup_fraction"),
                format!("{} is outside [0, 1)", r.warmup_fraction),
            ));
        }
        if !(r.decay_fraction > 0.0 && r.decay_fraction < 1.0) {
            return Err(SweepError::field(
                file,
                rule_field("decay_fraction"),
                format!("{} is outside (0, 1)", r.decay_fraction),
            ));
        }
        if r.ladder && self.budgets.len() < 2 {
            return Err(SweepError::field(
                file,
                "sweep.budgets",
                "a ladder (run_rule.ladder = true) needs at least two budgets; with one, \
                 drop the ladder line",
            ));
        }
        if !(1..=64).contains(&self.max_runs_per_gpu) {
            return Err(SweepError::field(
                file,
                "sweep.max_runs_per_gpu",
                format!("{} must be in 1..=64", self.max_runs_per_gpu),
            ));
        }
        for (name, value) in [
            ("sweep.device_memory_gib", self.device_memory_gib),
            ("sweep.flops_per_second", self.flops_per_second),
        ] {
            if let Some(v) = value.filter(|v| !(v.is_finite() && *v > 0.0)) {
                return Err(SweepError::field(file, name, format!("{v} must be > 0")));
            }
        }
        Ok(())
    }
}
