//! The optimal synthetic share of each kind of synthetic data.

use serde::Serialize;
use synthscale_fit::{run_study, FitError, FitOptions, Group, Law, StudyOptions};

use crate::config::ReportConfig;
use crate::error::Result;
use crate::format::fmt_params;
use crate::results::{Mixture, Results};

use super::domain::{points, unfit};
use super::key::{Fits, Key};

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

/// A share study, or why the data do not determine one.
pub(super) type ShareOutcome = std::result::Result<ShareStudy, String>;

/// The optimal share of `kind`: the baseline at share 0 and this kind's mixtures, one per
/// distinct share, fitted as one family per size (or one for the joint law).
pub(super) fn share_study(
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
