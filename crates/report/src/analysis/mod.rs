//! The fits a report is made of: the rectified and power laws per (domain, size, mixture),
//! the joint law per (domain, mixture), the optimal synthetic share per (domain, kind), each
//! run through `synthscale-fit`'s whole study where the data determine the law, and a
//! note saying why where they do not.
//!
//! - [`key`]: the typed key of every group, and a study's answer read through the keys;
//! - [`domain`]: the curve fits of one evaluation domain, with held-out checks;
//! - [`share`]: the optimal synthetic share of each kind.

mod domain;
mod key;
mod share;

use rayon::prelude::*;
use serde::Serialize;
use synthscale_fit::study::GroupReport;
use synthscale_fit::{BootstrapOptions, Law, StudyOptions};

use crate::config::ReportConfig;
use crate::error::Result;
use crate::results::{Mixture, Results};
use domain::fit_domain;
pub use domain::{fit_options, DomainFits, MIN_SEED_DOF};
pub use key::{Fits, Key};
use share::share_study;
pub use share::ShareStudy;

/// Every fit of a report: what the fit JSON holds, and the only source of the numbers in
/// the HTML and Markdown.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    /// The report's settings.
    pub config: ReportConfig,
    /// On the headline domain: `L(D) = B/(D_l + D^beta) + E` per (params, mixture), with
    /// speed-ups over the baseline per size.
    pub rectified: Option<Fits>,
    /// `L(D) = B/D^beta + E` on the same groups: the comparison.
    pub power: Option<Fits>,
    /// On the headline domain: `L(N,D) = E + A/N^alpha + B/D^beta` per mixture, with
    /// speed-ups at each model size and compute-optimal splits.
    pub chinchilla: Option<Fits>,
    /// Optimal synthetic shares.
    pub optimal_share: Vec<ShareStudy>,
    /// The point fits on every other evaluation domain (no intervals, no held-out check).
    pub per_domain: Vec<DomainFits>,
    /// Fits not made, and why (too few budgets, sizes or shares).
    pub skipped: Vec<String>,
}

/// A fitted curve in D at one model size, from whichever law fitted it.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// The law.
    pub law: Law,
    /// Its θ.
    pub theta: Vec<f64>,
    /// The model size it is read at (the joint law's N; 1 for one-variable laws).
    pub n: f64,
}

impl Curve {
    /// L(D).
    pub fn loss(&self, d: f64) -> f64 {
        self.law.predict(&self.theta, self.n, d)
    }

    /// D at which the curve reaches `target`.
    pub fn tokens_for(&self, target: f64) -> Option<f64> {
        synthscale_fit::derived::tokens_for_loss(self.law, &self.theta, self.n, target)
    }
}

/// θ of a group, in the law's order.
pub fn theta(law: Law, g: &GroupReport) -> Vec<f64> {
    law.theta_names().iter().map(|n| g.theta[*n]).collect()
}

impl Analysis {
    /// The curve of `mixture` at size `n` on `domain`: the rectified fit when there is one,
    /// else the joint law read at `n`.
    pub fn curve(&self, domain: &str, mixture: &str, n: f64) -> Option<Curve> {
        if let Some(g) = self
            .rectified
            .as_ref()
            .and_then(|r| r.group(domain, Some(n), mixture))
        {
            return Some(Curve {
                law: Law::Rectified,
                theta: theta(Law::Rectified, g),
                n: 1.0,
            });
        }
        let g = self.chinchilla.as_ref()?.group(domain, None, mixture)?;
        Some(Curve {
            law: Law::Chinchilla,
            theta: theta(Law::Chinchilla, g),
            n,
        })
    }
}

/// Fits every law the data determine: on the headline domain with bootstrap intervals,
/// speed-ups and optimal shares; on every other domain the point fits (and held-out
/// checks) only, for the per-domain tables.
pub fn analyze(results: &Results, cfg: &ReportConfig) -> Result<Analysis> {
    let mut skipped = Vec::new();
    let has_baseline = results.mixture(&cfg.baseline).is_some();
    if !has_baseline {
        skipped.push(format!(
            "speed-ups and optimal shares: no `{}` mixture (the baseline) in {}",
            cfg.baseline,
            results.path.display()
        ));
    }
    let head = fit_domain(
        results,
        cfg,
        &cfg.headline_domain,
        cfg.bootstrap,
        has_baseline,
        &mut skipped,
    )?;
    // The other domains' point fits are independent and single-threaded: one per core.
    let per_domain = results
        .domains
        .par_iter()
        .filter(|d| **d != cfg.headline_domain)
        .map(|d| fit_domain(results, cfg, d, 0, false, &mut Vec::new()))
        .collect::<Result<Vec<_>>>()?;

    // Optimal shares: per kind of synthetic data, the baseline at share 0 and every mixture
    // of that kind, with the law that fitted the curves.
    let fit_opts = fit_options(results, &cfg.headline_domain);
    let base_opts = |law: Law| StudyOptions {
        law,
        fit: fit_opts.clone(),
        bootstrap: BootstrapOptions {
            resamples: cfg.bootstrap,
            seed: cfg.seed,
            ..BootstrapOptions::default()
        },
        ..StudyOptions::default()
    };
    let mut optimal_share = Vec::new();
    if has_baseline {
        let mut kinds: Vec<&str> = results
            .mixtures
            .iter()
            .map(Mixture::kind)
            .filter(|k| *k != "none")
            .collect();
        kinds.sort();
        kinds.dedup();
        for kind in kinds {
            match share_study(
                results,
                cfg,
                kind,
                &fit_opts,
                &base_opts,
                head.rectified.is_some(),
            )? {
                Ok(s) => optimal_share.push(s),
                Err(why) => skipped.push(why),
            }
        }
    }
    Ok(Analysis {
        config: cfg.clone(),
        rectified: head.rectified,
        power: head.power,
        chinchilla: head.chinchilla,
        optimal_share,
        per_domain,
        skipped,
    })
}
