//! The curve fits of one evaluation domain: the rectified and power laws per (size,
//! mixture) and the joint law per mixture, with the held-out checks and the notes on what
//! could not be fitted.

use synthscale_fit::fit::{check_not_flat, check_sizes, min_points};
use synthscale_fit::{
    run_study, BootstrapOptions, FitError, FitOptions, Group, Holdout, Law, Point, StudyOptions,
};

use serde::Serialize;

use crate::config::ReportConfig;
use crate::error::Result;
use crate::results::Results;

use super::key::{Fits, Key};

/// The final points of `mixture` on `domain`, at size `n` or at every size.
pub(super) fn points(results: &Results, domain: &str, mixture: &str, n: Option<f64>) -> Vec<Point> {
    results
        .domain(domain)
        .filter(|o| o.mixture == mixture && n.is_none_or(|n| o.params == n))
        .map(|o| Point {
            d: o.tokens,
            n: o.params,
            loss: o.loss,
        })
        .collect()
}

/// Why `law` cannot be fitted to `pts`, if it cannot.
pub(super) fn unfit(law: Law, pts: &[Point], opts: &FitOptions, name: &str) -> Option<String> {
    let min = min_points(law, opts);
    if pts.len() < min {
        return Some(format!(
            "{} law, {name}: {} point(s), the law needs at least {min}",
            law.name(),
            pts.len()
        ));
    }
    check_sizes(law, pts, opts, name)
        .and_then(|()| check_not_flat(pts, name))
        .err()
        .map(|e| format!("{} law, {e}", law.name()))
}

/// `run_study` on `groups` (each with its key), leaving out (with a note) each group whose
/// fit does not converge: one odd curve of a real sweep must not cost the whole report.
fn robust_study(
    mut groups: Vec<(Group, Key)>,
    opts: &StudyOptions,
    skipped: &mut Vec<String>,
) -> Result<Option<(Fits, Vec<Group>)>> {
    loop {
        if groups.is_empty() {
            return Ok(None);
        }
        let plain: Vec<Group> = groups.iter().map(|(g, _)| g.clone()).collect();
        match run_study(&plain, opts) {
            Ok(report) => {
                let keys = groups.into_iter().map(|(_, k)| k).collect();
                return Ok(Some((Fits { report, keys }, plain)));
            }
            Err(e @ FitError::NotConverged { .. }) => {
                let FitError::NotConverged { group, .. } = &e else {
                    unreachable!()
                };
                let before = groups.len();
                // The held-out fit names its group `<name> (held-out check, …)`.
                groups.retain(|(g, _)| {
                    let n = g.name();
                    !(*group == n || group.starts_with(&format!("{n} (")))
                });
                if groups.len() == before {
                    return Err(e.into());
                }
                skipped.push(format!("{} law, {e}", opts.law.name()));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The laws fitted on one evaluation domain.
#[derive(Debug, Clone, Serialize)]
pub struct DomainFits {
    /// The domain.
    pub eval_domain: String,
    /// Rectified law per (size, mixture).
    pub rectified: Option<Fits>,
    /// Power law per (size, mixture).
    pub power: Option<Fits>,
    /// Joint law per mixture.
    pub chinchilla: Option<Fits>,
}

/// Fewest degrees of freedom of the seed-to-seed noise for it to set the Huber threshold.
pub const MIN_SEED_DOF: usize = 3;

/// How a domain's curves are fitted. Where the grid repeats some runs with other seeds
/// (at least [`MIN_SEED_DOF`] degrees of freedom), the Huber threshold is scaled to the
/// measured noise, `δ = 1.345 · σ_seed` (Huber's constant for 95% efficiency, as in
/// [`DeltaRule::Noise`](synthscale_fit::fit::DeltaRule::Noise)): a noise estimate pooled
/// over the whole grid instead of each curve's handful of residuals.
pub fn fit_options(results: &Results, domain: &str) -> FitOptions {
    match results.seed_noise(domain) {
        Some(s) if s.dof >= MIN_SEED_DOF && s.sd_log > 0.0 => {
            FitOptions::default().fixed((1.345 * s.sd_log).max(1e-4))
        }
        _ => FitOptions::default(),
    }
}

/// The rectified, power and joint laws on one domain; why a group was not fitted goes to
/// `skipped`.
pub(super) fn fit_domain(
    results: &Results,
    cfg: &ReportConfig,
    domain: &str,
    resamples: usize,
    speedups: bool,
    skipped: &mut Vec<String>,
) -> Result<DomainFits> {
    // Held-out checks are reported for the headline domain only.
    let headline = domain == cfg.headline_domain;
    let fit_opts = fit_options(results, domain);
    let opts = |law: Law| StudyOptions {
        law,
        fit: fit_opts.clone(),
        bootstrap: BootstrapOptions {
            resamples,
            seed: cfg.seed,
            ..BootstrapOptions::default()
        },
        holdout: Holdout::None,
        // Speed-ups from the rectified and joint laws; the power law is the comparison.
        baseline: (speedups && law != Law::Power)
            .then(|| ("mixture".to_string(), cfg.baseline.clone())),
        target_losses: cfg.target_loss.into_iter().collect(),
        ..StudyOptions::default()
    };
    // One-variable laws: one curve per (size, mixture).
    let mut one_var: Vec<(Group, Key)> = Vec::new();
    for &n in &results.sizes {
        for m in &results.mixtures {
            let pts = points(results, domain, &m.name, Some(n));
            if pts.is_empty() {
                continue;
            }
            let key = Key {
                domain: domain.to_string(),
                params: Some(n),
                mixture: Some(m.name.clone()),
                share: None,
            };
            one_var.push((key.group(None, pts), key));
        }
    }
    let mut fits = Vec::new();
    for law in [Law::Rectified, Law::Power] {
        let mut ok = Vec::new();
        for (g, k) in &one_var {
            match unfit(law, &g.points, &fit_opts, &g.name()) {
                None => ok.push((g.clone(), k.clone())),
                Some(why) => skipped.push(why),
            }
        }
        fits.push(match robust_study(ok, &opts(law), skipped)? {
            None => None,
            Some((r, ok)) if headline => Some(with_holdout(r, &ok, law, cfg, skipped)?),
            Some((r, _)) => Some(r),
        });
    }
    // The joint law: one surface per mixture.
    let mut joint: Vec<(Group, Key)> = Vec::new();
    for m in &results.mixtures {
        let key = Key {
            domain: domain.to_string(),
            params: None,
            mixture: Some(m.name.clone()),
            share: None,
        };
        let g = key.group(None, points(results, domain, &m.name, None));
        match unfit(Law::Chinchilla, &g.points, &fit_opts, &g.name()) {
            None => joint.push((g, key)),
            Some(why) => skipped.push(why),
        }
    }
    let chinchilla = match robust_study(joint, &opts(Law::Chinchilla), skipped)? {
        None => None,
        Some((r, joint)) if headline => {
            Some(with_holdout(r, &joint, Law::Chinchilla, cfg, skipped)?)
        }
        Some((r, _)) => Some(r),
    };
    let power = fits.pop().flatten();
    let rectified = fits.pop().flatten();
    Ok(DomainFits {
        eval_domain: domain.to_string(),
        rectified,
        power,
        chinchilla,
    })
}

/// Adds each group's held-out check where the points without the largest budget (joint
/// law: the largest size) still determine the law.
fn with_holdout(
    mut report: Fits,
    groups: &[Group],
    law: Law,
    cfg: &ReportConfig,
    skipped: &mut Vec<String>,
) -> Result<Fits> {
    if !cfg.holdout {
        return Ok(report);
    }
    let opts = StudyOptions {
        law,
        holdout: Holdout::Largest,
        bootstrap: BootstrapOptions {
            resamples: 0,
            ..BootstrapOptions::default()
        },
        ..StudyOptions::default()
    };
    let mut unchecked: Vec<(String, String)> = Vec::new();
    for (g, out) in groups.iter().zip(report.report.groups.iter_mut()) {
        let key = |p: &Point| if law.uses_params() { p.n } else { p.d };
        let largest = g.points.iter().map(key).fold(f64::MIN, f64::max);
        let kept: Vec<Point> = g
            .points
            .iter()
            .copied()
            .filter(|p| key(p) < largest)
            .collect();
        if let Some(why) = unfit(law, &kept, &opts.fit, &g.name()) {
            // Said, not skipped silently: with its largest budget held out, the group has too
            // few points or budgets left for the law (one note per law, naming the groups).
            unchecked.push((g.name(), why));
            continue;
        }
        match run_study(std::slice::from_ref(g), &opts) {
            Ok(r) => out.holdout = r.groups.into_iter().next().and_then(|g| g.holdout),
            Err(e @ FitError::NotConverged { .. }) => {
                skipped.push(format!("held-out check, {} law, {e}", law.name()))
            }
            Err(e) => return Err(e.into()),
        }
    }
    if let Some((_, why)) = unchecked.first() {
        skipped.push(format!(
            "held-out check not run for {} of {} {} fits: without its largest {} a group is \
             too small for the law (e.g. {why}); groups: {}",
            unchecked.len(),
            groups.len(),
            law.name(),
            if law.uses_params() {
                "model size"
            } else {
                "budget"
            },
            unchecked
                .iter()
                .map(|(g, _)| g.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    Ok(report)
}
