//! The fits a report is made of: the rectified and power laws per (domain, size, mixture),
//! the joint law per (domain, mixture), the optimal synthetic share per (domain, kind), each
//! run through `synthscale-fit`'s whole study where the data determine the law, and a
//! note saying why where they do not.

use rayon::prelude::*;
use serde::Serialize;
use synthscale_fit::fit::{check_not_flat, check_sizes, min_points};
use synthscale_fit::study::GroupReport;
use synthscale_fit::{
    run_study, BootstrapOptions, FitError, FitOptions, Group, Holdout, Law, Point, StudyOptions,
    StudyReport,
};

use std::ops::Deref;

use crate::config::ReportConfig;
use crate::error::Result;
use crate::format::{fmt_params, key_num};
use crate::results::{Mixture, Results};

/// What a fitted group is, typed: the report builds every group it hands the fitter from
/// these, and reads the fitter's answers back through them (by the group indices the fitter
/// returns), never by parsing group or family names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Key {
    /// Validation domain, or `mean`.
    pub domain: String,
    /// Model size N (one-variable laws); `None` for the joint law's groups.
    pub params: Option<f64>,
    /// Mixture name (curve fits), or `None` (optimal-share groups).
    pub mixture: Option<String>,
    /// Synthetic share (optimal-share groups).
    pub share: Option<f64>,
}

impl Key {
    /// The group handed to the fitter: its keys name it in fit.json and error messages.
    fn group(&self, kind: Option<&str>, points: Vec<Point>) -> Group {
        let mut k = vec![("eval_domain".to_string(), self.domain.clone())];
        if let Some(kind) = kind {
            k.push(("kind".into(), kind.to_string()));
        }
        if let Some(n) = self.params {
            k.push(("params".into(), key_num(n)));
        }
        if let Some(m) = &self.mixture {
            k.push(("mixture".into(), m.clone()));
        }
        if let Some(s) = self.share {
            k.push(("share".into(), key_num(s)));
        }
        Group { keys: k, points }
    }

    /// The mixture, for curve groups (empty for share groups).
    pub fn mixture(&self) -> &str {
        self.mixture.as_deref().unwrap_or("")
    }
}

/// One study's answer with the typed key of each of its groups (`keys[i]` is
/// `report.groups[i]`'s). Serialized as the study alone.
#[derive(Debug, Clone, Serialize)]
pub struct Fits {
    /// The fitter's answer.
    #[serde(flatten)]
    pub report: StudyReport,
    /// Each group's key, parallel to `report.groups`.
    #[serde(skip)]
    pub keys: Vec<Key>,
}

impl Deref for Fits {
    type Target = StudyReport;
    fn deref(&self) -> &StudyReport {
        &self.report
    }
}

impl Fits {
    /// The group of (domain, size, mixture); `params` `None` for the joint law's groups.
    pub fn group(&self, domain: &str, params: Option<f64>, mixture: &str) -> Option<&GroupReport> {
        self.keys
            .iter()
            .position(|k| {
                k.domain == domain && k.params == params && k.mixture.as_deref() == Some(mixture)
            })
            .map(|i| &self.report.groups[i])
    }

    /// The groups on `domain`, with their keys.
    pub fn on<'a>(&'a self, domain: &'a str) -> impl Iterator<Item = (&'a GroupReport, &'a Key)> {
        self.report
            .groups
            .iter()
            .zip(&self.keys)
            .filter(move |(_, k)| k.domain == domain)
    }

    /// The key of group `i` (an index the fitter returned).
    pub fn key(&self, i: usize) -> &Key {
        &self.keys[i]
    }
}

/// The optimal synthetic share of one kind of synthetic data.
#[derive(Debug, Clone, Serialize)]
pub struct ShareStudy {
    /// `rephrased`, `textbook` or `rephrased+textbook`.
    pub kind: String,
    /// The mixtures compared (the baseline at share 0 and every mixture of this kind).
    pub mixtures: Vec<String>,
    /// The study (groups keyed by `eval_domain`, `kind`, `params` for one-variable laws,
    /// and `share`; `optimal_ratios` holds the answers).
    pub report: Fits,
}

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

fn points(results: &Results, domain: &str, mixture: &str, n: Option<f64>) -> Vec<Point> {
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
fn unfit(law: Law, pts: &[Point], opts: &FitOptions, name: &str) -> Option<String> {
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
fn fit_domain(
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

type ShareOutcome = std::result::Result<ShareStudy, String>;

fn share_study(
    results: &Results,
    cfg: &ReportConfig,
    kind: &str,
    fit_opts: &FitOptions,
    base_opts: &dyn Fn(Law) -> StudyOptions,
    one_var: bool,
) -> Result<ShareOutcome> {
    // Members: the baseline, then this kind's mixtures, one per distinct share.
    let mut members: Vec<&Mixture> = vec![results.mixture(&cfg.baseline).expect("checked")];
    for m in results.mixtures.iter().filter(|m| m.kind() == kind) {
        if members
            .iter()
            .all(|x| (x.synthetic() - m.synthetic()).abs() > 1e-9)
        {
            members.push(m);
        }
    }
    if members.len() < 3 {
        return Ok(Err(format!(
            "optimal {kind} share: {} distinct share(s) ({}); the quadratic model of loss \
             against share needs at least 3",
            members.len(),
            members
                .iter()
                .map(|m| crate::format::num(m.synthetic()))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let law = if one_var {
        Law::Rectified
    } else {
        Law::Chinchilla
    };
    let sizes: Vec<Option<f64>> = if one_var {
        results.sizes.iter().map(|&n| Some(n)).collect()
    } else {
        vec![None]
    };
    let mut groups = Vec::new();
    let mut dropped = Vec::new();
    for d in std::iter::once(&cfg.headline_domain) {
        for &n in &sizes {
            let mut family = Vec::new();
            for m in &members {
                let key = Key {
                    domain: d.clone(),
                    params: n,
                    mixture: None,
                    share: Some(m.synthetic()),
                };
                let g = key.group(Some(kind), points(results, d, &m.name, n));
                if !g.points.is_empty() && unfit(law, &g.points, fit_opts, &g.name()).is_none() {
                    family.push((g, key));
                }
            }
            if family.len() >= 3 {
                groups.extend(family);
            } else if d == &cfg.headline_domain {
                dropped.push(n.map_or("the joint law".to_string(), fmt_params));
            }
        }
    }
    if groups.is_empty() {
        return Ok(Err(format!(
            "optimal {kind} share: fewer than 3 shares with a {} fit at {}",
            law.name(),
            dropped.join(", ")
        )));
    }
    let mut opts = base_opts(law);
    opts.baseline = None;
    opts.ratio_col = Some("share".into());
    let plain: Vec<Group> = groups.iter().map(|(g, _)| g.clone()).collect();
    let report = match run_study(&plain, &opts) {
        Ok(report) => Fits {
            report,
            keys: groups.into_iter().map(|(_, k)| k).collect(),
        },
        Err(e @ FitError::NotConverged { .. }) => {
            return Ok(Err(format!(
                "optimal {kind} share: {} law, {e}",
                law.name()
            )))
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Ok(ShareStudy {
        kind: kind.to_string(),
        mixtures: members.iter().map(|m| m.name.clone()).collect(),
        report,
    }))
}
