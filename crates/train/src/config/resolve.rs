//! A run config checked against the data directory's description and resolved: the
//! model shape, sequence length and mixture, every bound, and a ladder branch's steps.

use std::path::Path;

use synthscale_data::{DataMeta, Mixture};
use synthscale_model::ModelConfig;

use super::{ResolvedConfig, RunConfig, Schedule};
use crate::error::{Result, TrainError};

impl RunConfig {
    /// Checks every bound against the data directory's description and resolves the
    /// model shape, sequence length and mixture. `file` names the config in messages.
    pub fn resolve(
        &self,
        meta: &DataMeta,
        tokenizer_hash: &str,
        file: &Path,
    ) -> Result<ResolvedConfig> {
        let field = |f: &str, m: String| TrainError::Field {
            file: file.to_path_buf(),
            field: f.to_string(),
            message: m,
        };
        let seq_len = if self.data.seq_len == 0 {
            meta.seq_len
        } else {
            self.data.seq_len
        };
        let o = &self.optim;
        if !(o.lr.is_finite() && o.lr > 0.0 && o.lr < 10.0) {
            return Err(field("optim.lr", format!("{} is outside (0, 10)", o.lr)));
        }
        for (name, v, lo, hi) in [
            ("optim.min_lr_ratio", o.min_lr_ratio, 0.0, 1.0),
            ("optim.warmup_fraction", o.warmup_fraction, 0.0, 1.0),
            ("optim.decay_fraction", o.decay_fraction, 0.0, 1.0),
            ("optim.beta1", o.beta1, 0.0, 0.999_999),
            ("optim.beta2", o.beta2, 0.0, 0.999_999_9),
        ] {
            if !(v.is_finite() && (lo..=hi).contains(&v)) {
                return Err(field(name, format!("{v} is outside [{lo}, {hi}]")));
            }
        }
        if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
            return Err(field(
                "optim.weight_decay",
                format!("{} must be ≥ 0", o.weight_decay),
            ));
        }
        if !(o.eps.is_finite() && o.eps > 0.0) {
            return Err(field("optim.eps", format!("{} must be > 0", o.eps)));
        }
        if !(o.grad_clip.is_finite() && o.grad_clip >= 0.0) {
            return Err(field(
                "optim.grad_clip",
                format!("{} must be ≥ 0", o.grad_clip),
            ));
        }
        if o.micro_batch_size == 0 {
            return Err(field("optim.micro_batch_size", "must be at least 1".into()));
        }
        let per_micro = seq_len as u64 * o.micro_batch_size as u64;
        if o.batch_tokens == 0 || o.batch_tokens % per_micro != 0 {
            return Err(field(
                "optim.batch_tokens",
                format!(
                    "{} is not a positive multiple of seq_len × micro_batch_size = {seq_len} × {} = {per_micro}",
                    o.batch_tokens, o.micro_batch_size
                ),
            ));
        }
        if self.data.token_budget < o.batch_tokens {
            return Err(field(
                "data.token_budget",
                format!(
                    "{} tokens is less than one optimizer step of optim.batch_tokens = {}",
                    self.data.token_budget, o.batch_tokens
                ),
            ));
        }
        if self.eval.batch_size == 0 {
            return Err(field("eval.batch_size", "must be at least 1".into()));
        }
        if self.eval.max_tokens < seq_len as u64 {
            return Err(field(
                "eval.max_tokens",
                format!(
                    "{} is less than one sequence of {seq_len} tokens",
                    self.eval.max_tokens
                ),
            ));
        }
        let mixture = self.mixture(meta, file)?;
        // A batch larger than the data would repeat sequences inside one step.
        let windows: u64 = mixture
            .weights
            .iter()
            .filter(|(_, w)| *w > 0.0)
            .filter_map(|(name, _)| meta.source_index(name))
            .map(|i| meta.sources[i].train.tokens.saturating_sub(1) / seq_len as u64)
            .sum();
        let batch = o.batch_tokens / seq_len as u64;
        if batch > windows {
            return Err(field(
                "optim.batch_tokens",
                format!(
                    "a batch of {batch} sequences is larger than the data: the mixture's sources \
                     hold {windows} training sequences of {seq_len} tokens"
                ),
            ));
        }
        let steps = self.data.token_budget / o.batch_tokens;
        if o.warmup_steps > steps {
            return Err(field(
                "optim.warmup_steps",
                format!(
                    "{} is longer than the run: data.token_budget / optim.batch_tokens = {} / {} \
                     = {steps} steps",
                    o.warmup_steps, self.data.token_budget, o.batch_tokens
                ),
            ));
        }
        let model = self.model_config(meta.tokenizer.vocab_size as usize, seq_len, file)?;
        let resolved = ResolvedConfig {
            seed: self.seed,
            device: self.device,
            data_dir: self.data.dir.clone(),
            tokenizer_hash: tokenizer_hash.to_string(),
            mixture: mixture.weights.into_iter().collect(),
            token_budget: self.data.token_budget,
            seq_len,
            model,
            optim: self.optim.clone(),
            eval: self.eval.clone(),
            checkpoint: self.checkpoint.clone(),
            branch: self.branch.clone(),
            init_from: self.init_from.clone(),
        };
        if self.branch.is_some() && self.init_from.is_some() {
            return Err(field(
                "init_from",
                "a ladder branch starts from its trunk's checkpoint; give init_from to the \
                 trunk, not to a branch"
                    .into(),
            ));
        }
        resolved.check_ladder(file)?;
        Ok(resolved)
    }

    fn mixture(&self, meta: &DataMeta, file: &Path) -> Result<Mixture> {
        let d = &self.data;
        match (d.weights.is_empty(), d.shares.is_empty()) {
            (false, true) => {
                // Named here, before the batch is measured against the sources it names.
                if let Some(name) = d.weights.keys().find(|n| meta.source_index(n).is_none()) {
                    let names: Vec<_> = meta.sources.iter().map(|s| s.name.as_str()).collect();
                    return Err(TrainError::Field {
                        file: file.to_path_buf(),
                        field: format!("data.weights.{name}"),
                        message: format!(
                            "the data has no source {name:?}; its sources are {}",
                            names.join(", ")
                        ),
                    });
                }
                Ok(Mixture {
                    weights: d.weights.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                })
            }
            (true, false) => {
                let shares: Vec<_> = d.shares.iter().map(|(k, v)| (*k, *v)).collect();
                Ok(Mixture::from_kind_shares(meta, &shares)?)
            }
            _ => Err(TrainError::Field {
                file: file.to_path_buf(),
                field: "data.weights".into(),
                message: "give exactly one of data.weights (per source) or data.shares (per kind)"
                    .into(),
            }),
        }
    }

    fn model_config(&self, vocab: usize, seq_len: usize, file: &Path) -> Result<ModelConfig> {
        let m = &self.model;
        let field = |f: &str, msg: String| TrainError::Field {
            file: file.to_path_buf(),
            field: f.to_string(),
            message: msg,
        };
        let mut c = match (&m.preset, m.params) {
            (Some(_), Some(_)) => {
                return Err(field(
                    "model.preset",
                    "give model.preset or model.params, not both".into(),
                ))
            }
            (Some(p), None) => {
                ModelConfig::preset(p, vocab).map_err(|e| field("model.preset", e.to_string()))?
            }
            (None, Some(n)) => ModelConfig::for_params(n, vocab)
                .map_err(|e| field("model.params", e.to_string()))?,
            (None, None) => match (m.d_model, m.n_layers, m.n_heads) {
                (Some(d), Some(l), Some(h)) => ModelConfig::from_shape(d, l, h, vocab),
                _ => {
                    return Err(field(
                        "model",
                        "give model.preset, model.params, or d_model, n_layers and n_heads".into(),
                    ))
                }
            },
        };
        if let Some(v) = m.d_model {
            c.d_model = v;
            if m.d_ff.is_none() {
                c.d_ff = synthscale_model::config::swiglu_width(v);
            }
        }
        if let Some(v) = m.n_layers {
            c.n_layers = v;
        }
        if let Some(v) = m.n_heads {
            c.n_heads = v;
            c.n_kv_heads = v;
        }
        if let Some(v) = m.n_kv_heads {
            c.n_kv_heads = v;
        }
        if let Some(v) = m.d_ff {
            c.d_ff = v;
        }
        if let Some(v) = m.tie_embeddings {
            c.tie_embeddings = v;
        }
        if let Some(v) = m.init_std {
            c.init_std = v;
        }
        if let Some(v) = m.rope_theta {
            c.rope_theta = v;
        }
        c.max_seq_len = seq_len;
        c.validate().map_err(|e| field("model", e.to_string()))?;
        Ok(c)
    }
}

impl ResolvedConfig {
    /// A branch starts at its own cooldown start, after the warm-up; kept steps lie inside
    /// the run.
    fn check_ladder(&self, file: &Path) -> Result<()> {
        let field = |f: &str, m: String| TrainError::Field {
            file: file.to_path_buf(),
            field: f.to_string(),
            message: m,
        };
        let steps = self.steps();
        for &k in &self.checkpoint.keep_steps {
            if k == 0 || k > steps {
                return Err(field(
                    "checkpoint.keep_steps",
                    format!("step {k} is outside the run's steps 1..={steps}"),
                ));
            }
        }
        let Some(b) = &self.branch else {
            return Ok(());
        };
        if self.optim.schedule != Schedule::Wsd {
            return Err(field(
                "optim.schedule",
                "a branch (a [branch] section) cools down from a constant-LR trunk: it needs \
                 schedule = \"wsd\""
                    .into(),
            ));
        }
        let cool = (self.optim.decay_fraction * steps as f64).round() as u64;
        let start = steps.saturating_sub(cool);
        if cool == 0 || start < self.warmup_steps() {
            return Err(field(
                "optim.decay_fraction",
                format!(
                    "the cooldown of {cool} steps would start at step {start} of {steps}, \
                     not after the {} warm-up steps",
                    self.warmup_steps()
                ),
            ));
        }
        if b.step != start {
            return Err(field(
                "branch.step",
                format!(
                    "{} is not this run's cooldown start, step {start} of {steps} \
                     (steps − round(optim.decay_fraction · steps))",
                    b.step
                ),
            ));
        }
        Ok(())
    }
}
