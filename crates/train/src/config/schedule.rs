//! A resolved run's step arithmetic: sequences per step, accumulation, steps, warm-up,
//! and the learning rate at each step (cosine, WSD, constant; the cooldown's shape).

use super::{DecayShape, ResolvedConfig, Schedule};

impl ResolvedConfig {
    /// Sequences per optimizer step.
    pub fn batch_sequences(&self) -> usize {
        (self.optim.batch_tokens / self.seq_len as u64) as usize
    }

    /// Forward/backward passes per optimizer step.
    pub fn accumulation(&self) -> usize {
        self.batch_sequences() / self.optim.micro_batch_size
    }

    pub fn steps(&self) -> u64 {
        self.token_budget / self.optim.batch_tokens
    }

    pub fn warmup_steps(&self) -> u64 {
        if self.optim.warmup_steps > 0 {
            self.optim.warmup_steps
        } else {
            (self.optim.warmup_fraction * self.steps() as f64).round() as u64
        }
    }

    /// The learning rate at optimizer step `step` (0-based).
    pub fn lr_at(&self, step: u64) -> f64 {
        let o = &self.optim;
        let total = self.steps().max(1);
        let warm = self.warmup_steps().min(total);
        let min_lr = o.lr * o.min_lr_ratio;
        if step < warm {
            return o.lr * (step + 1) as f64 / warm as f64;
        }
        match o.schedule {
            Schedule::Constant => o.lr,
            Schedule::Cosine => {
                // The last step (total − 1) lands exactly on the floor.
                let span = (total - warm).saturating_sub(1).max(1) as f64;
                let progress = ((step - warm) as f64 / span).min(1.0);
                min_lr + 0.5 * (o.lr - min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
            }
            Schedule::Wsd => {
                let start = self.decay_start();
                if step < start {
                    return o.lr;
                }
                // Hägele et al. 2024, §3: lr(n) = peak + (min − peak)·g(p),
                // p = (n − N₀)/N_cool, with n = step + 1 the 1-based update count, N₀ the
                // cooldown's start and N_cool its length, so the last update lands exactly
                // on the floor (as the cosine above does); g(p) = p or √p (DecayShape).
                let decay = total - start;
                let p = (step - start + 1) as f64 / decay as f64;
                let g = match o.decay_shape {
                    DecayShape::Linear => p,
                    DecayShape::OneMinusSqrt => p.sqrt(),
                };
                o.lr + (min_lr - o.lr) * g
            }
        }
    }

    /// WSD: the first step of the cooldown, `steps − round(decay_fraction · steps)`, never
    /// inside the warm-up; `steps` when there is no cooldown. A ladder's trunk branches
    /// here.
    pub fn decay_start(&self) -> u64 {
        let total = self.steps().max(1);
        let warm = self.warmup_steps().min(total);
        let decay = ((self.optim.decay_fraction * total as f64).round() as u64).min(total - warm);
        total - decay
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use synthscale_model::ModelConfig;

    use super::*;
    use crate::config::{CheckpointConfig, DeviceSpec, EvalConfig, OptimConfig};

    fn resolved(schedule: Schedule, steps: u64, warmup: u64) -> ResolvedConfig {
        ResolvedConfig {
            seed: 0,
            device: DeviceSpec::Cpu,
            data_dir: PathBuf::new(),
            tokenizer_hash: String::new(),
            mixture: BTreeMap::new(),
            token_budget: steps * 1024,
            seq_len: 64,
            model: ModelConfig::default(),
            optim: OptimConfig {
                lr: 1.0,
                min_lr_ratio: 0.1,
                schedule,
                warmup_steps: warmup,
                decay_fraction: 0.25,
                batch_tokens: 1024,
                micro_batch_size: 16,
                ..OptimConfig::default()
            },
            eval: EvalConfig::default(),
            checkpoint: CheckpointConfig::default(),
            branch: None,
            init_from: None,
        }
    }

    #[test]
    fn cosine_warms_up_linearly_then_reaches_the_floor() {
        // Oracle: the closed forms lr·(s+1)/W in warm-up, and
        // min + (lr − min)·(1 + cos(π·p))/2 after, p = (s − W)/(S − W − 1).
        let r = resolved(Schedule::Cosine, 110, 10);
        assert!((r.lr_at(0) - 0.1).abs() < 1e-12);
        assert!((r.lr_at(9) - 1.0).abs() < 1e-12);
        assert!((r.lr_at(10) - 1.0).abs() < 1e-12);
        let p = 50.0 / 99.0;
        assert!(
            (r.lr_at(60) - (0.1 + 0.45 * (1.0 + (std::f64::consts::PI * p).cos()))).abs() < 1e-12
        );
        assert!((r.lr_at(109) - 0.1).abs() < 1e-12);
        assert!(r.lr_at(108) > 0.1 && r.lr_at(108) < 0.1003);
    }

    #[test]
    fn wsd_is_flat_then_decays_linearly_to_the_floor() {
        let r = resolved(Schedule::Wsd, 100, 10);
        assert!((r.lr_at(50) - 1.0).abs() < 1e-12);
        assert!((r.lr_at(74) - 1.0).abs() < 1e-12);
        // 25 decay steps from step 75: step 75 is 1/25 of the way, step 99 reaches the floor.
        assert!((r.lr_at(75) - (1.0 - 0.9 / 25.0)).abs() < 1e-12);
        assert!((r.lr_at(99) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn one_minus_sqrt_cooldown_is_the_papers_formula() {
        // Oracle: Hägele et al. 2024 (arXiv 2405.18392) §3, the (1 − sqrt) cooldown to a
        // zero floor, lr(n) = peak · (1 − √((n − N₀)/N_cool)), n the 1-based update count:
        // 100 steps, 25 of cooldown from N₀ = 75, peak 1.
        let mut r = resolved(Schedule::Wsd, 100, 10);
        r.optim.decay_shape = DecayShape::OneMinusSqrt;
        r.optim.min_lr_ratio = 0.0;
        assert_eq!(r.decay_start(), 75);
        assert_eq!(r.lr_at(74), 1.0);
        for step in 75..100u64 {
            let n = (step + 1) as f64;
            let want = 1.0 * (1.0 - ((n - 75.0) / 25.0).sqrt());
            assert!((r.lr_at(step) - want).abs() < 1e-12, "step {step}");
        }
        assert_eq!(r.lr_at(99), 0.0);
        // With a floor the shape is kept between peak and floor: 1 − 0.9·√(12/25).
        r.optim.min_lr_ratio = 0.1;
        assert!((r.lr_at(86) - (1.0 - 0.9 * 0.48f64.sqrt())).abs() < 1e-12);
        // The linear shape, same oracle with g(p) = p: peak · (1 − (n − N₀)/N_cool).
        r.optim.decay_shape = DecayShape::Linear;
        r.optim.min_lr_ratio = 0.0;
        assert!((r.lr_at(86) - (1.0 - 12.0 / 25.0)).abs() < 1e-12);
    }

    #[test]
    fn wsd_before_its_cooldown_is_the_constant_schedule_to_the_bit() {
        // Oracle: the constant schedule — a ladder's trunk — with the same warm-up. A branch
        // replays the trunk's steps, so their learning rates must agree exactly.
        let mut wsd = resolved(Schedule::Wsd, 160, 7);
        wsd.optim.decay_fraction = 0.2;
        let trunk = resolved(Schedule::Constant, 128, 7);
        assert_eq!(wsd.decay_start(), 128);
        for step in 0..128 {
            assert_eq!(wsd.lr_at(step).to_bits(), trunk.lr_at(step).to_bits());
        }
        assert!(wsd.lr_at(128) < 1.0);
    }

    #[test]
    fn shapes_parse_by_their_names_and_linear_is_not_written() {
        let o: OptimConfig = toml::from_str("decay_shape = \"1-sqrt\"").unwrap();
        assert_eq!(o.decay_shape, DecayShape::OneMinusSqrt);
        let o: OptimConfig = toml::from_str("decay_shape = \"linear\"").unwrap();
        assert!(!toml::to_string(&o).unwrap().contains("decay_shape"));
        assert!(toml::from_str::<OptimConfig>("decay_shape = \"cubic\"").is_err());
    }
}
