//! The report's findings in sentences, and how the fits' Huber threshold was chosen.

use crate::format::{fmt_params, num, si};
use crate::plots::speedups_at;
use crate::results::MEAN;

use super::cells::Reach;
use super::doc::Doc;

impl Doc<'_> {
    /// The headline findings, as sentences.
    pub(super) fn findings(&self) -> Vec<String> {
        let a = self.analysis;
        let mut out = Vec::new();
        let res = self.results;
        out.push(format!(
            "{} runs: {} mixture(s) × {} model size(s) ({}) × {} budget(s) ({} to {} tokens); loss is {}.",
            res.runs.len(),
            res.mixtures.len(),
            res.sizes.len(),
            res.sizes.iter().map(|&n| si(n)).collect::<Vec<_>>().join(", "),
            res.budgets.len(),
            si(res.budgets[0]),
            si(res.budgets[res.budgets.len() - 1]),
            if self.headline() == MEAN {
                format!("the validation loss {}", res.mean_text())
            } else {
                format!("on domain {}", self.headline())
            }
        ));
        // How far below the unigram baseline the runs end: near it, they measure the initial
        // plateau of training, not a scaling law.
        let gaps: Vec<f64> = res
            .runs
            .iter()
            .filter_map(|r| {
                let u = res.unigram_loss(&r.mixture, self.headline())?;
                Some(u - r.loss.get(self.headline())?)
            })
            .collect();
        if let (Some(lo), Some(hi)) = (
            gaps.iter().copied().reduce(f64::min),
            gaps.iter().copied().reduce(f64::max),
        ) {
            out.push(format!(
                "Runs end {} to {} nats below the unigram loss of their mixture's training tokens ({} of {} runs at least 0.3 nats below; figure 1's dotted line).",
                num(lo),
                num(hi),
                gaps.iter().filter(|g| **g >= 0.3).count(),
                gaps.len()
            ));
        }
        if let Some(sn) = res.seed_noise(self.headline()) {
            out.push(format!(
                "Seed-to-seed noise: the SD of ln L between runs that differ only in their seed is {} ({}%), pooled over {} cell(s) ({} degree(s) of freedom){}.",
                num(sn.sd_log),
                num(100.0 * sn.sd_log),
                sn.cells,
                sn.dof,
                if sn.dof >= crate::analysis::MIN_SEED_DOF {
                    "; the fits' Huber threshold is 1.345 times it"
                } else {
                    ""
                }
            ));
        }
        if let Some(&n) = res
            .sizes
            .iter()
            .rev()
            .find(|&&n| !speedups_at(a, self.headline(), n).is_empty())
        {
            for r in speedups_at(a, self.headline(), n) {
                let s = r.speedup;
                let mark = Reach::of(s.extrapolated, s.beyond_data)
                    .text()
                    .map_or(String::new(), |m| {
                        format!(" ({m}: a curve is read past its runs)")
                    });
                out.push(format!(
                    "At {}, {} reaches L* = {} with a speed-up of {}× {} over {} (D_{}(L*) / D_mixture(L*); below 1 means more tokens){mark}.",
                    fmt_params(n),
                    r.mixture,
                    num(s.target_loss),
                    s.speedup.map_or("—".into(), num),
                    crate::format::ci(s.speedup_ci95.as_ref()),
                    a.config.baseline,
                    a.config.baseline
                ));
            }
        }
        for s in &a.optimal_share {
            let xs: Vec<f64> = s
                .report
                .optimal_ratios
                .iter()
                .filter(|x| {
                    x.members
                        .first()
                        .is_some_and(|&i| s.report.key(i).domain == self.headline())
                })
                .filter_map(|x| x.optimal_ratio)
                .collect();
            if let (Some(lo), Some(hi)) = (
                xs.iter().copied().reduce(f64::min),
                xs.iter().copied().reduce(f64::max),
            ) {
                let grid = s.report.optimal_ratios.iter().any(|x| x.grid_determined);
                out.push(format!(
                    "Optimal {} share across sizes and budgets: {} to {}{}.",
                    s.kind,
                    num(lo),
                    num(hi),
                    if grid {
                        " (fewer than 4 shares were run: a quadratic through 3 always has a \
                         vertex, so the grid, not the data, sets this)"
                    } else {
                        ""
                    }
                ));
            }
        }
        if a.rectified.is_none() && a.chinchilla.is_none() {
            out.push("No scaling law could be fitted: see Notes for what the results lack.".into());
        }
        out
    }

    /// How the Huber threshold was chosen on the headline domain.
    pub(super) fn delta_text(&self) -> String {
        match self.results.seed_noise(self.headline()) {
            Some(sn) if sn.dof >= crate::analysis::MIN_SEED_DOF => format!(
                "δ = 1.345 × the seed-to-seed SD of ln L, {} = {}",
                num(sn.sd_log),
                num(1.345 * sn.sd_log)
            ),
            _ => "δ = 1.345 × 1.4826 × the median absolute log residual of a least-squares \
                  pre-fit of each curve, at least 10⁻⁴ (recorded per fit as huber_delta)"
                .to_string(),
        }
    }
}
