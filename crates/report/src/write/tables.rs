//! The tables of the report, one method each: parameters, held-out checks, plateaus,
//! speed-ups, multipliers, optimal shares, compute-optimal splits and the runs.

use crate::analysis::{Fits, Key};
use crate::format::{fmt_params, num, si};

use super::cells::{plateau_cell, Cell, Reach, Table};
use super::doc::{who, Doc};

impl Doc<'_> {
    /// One row per run: its size, budget, FLOPs, seeds and final loss on every domain.
    pub(super) fn runs_table(&self) -> Table {
        let mut head = vec![
            "mixture",
            "N",
            "non-embedding N",
            "D",
            "D/N",
            "FLOPs",
            "seeds",
        ];
        let doms: Vec<String> = self
            .results
            .domains
            .iter()
            .map(|d| format!("loss: {d}"))
            .collect();
        head.extend(doms.iter().map(String::as_str));
        let mut tb = Table::new("Runs (final validation loss, nats/token)", &head);
        for r in &self.results.runs {
            let mut row = vec![
                Cell::text(r.mixture.clone()),
                Cell::number(r.params),
                Cell::number(r.non_embedding_params),
                Cell::number(r.tokens),
                Cell::number(r.tokens / r.params),
                Cell::number(r.flops),
                Cell::text(r.seeds.to_string()),
            ];
            for d in &self.results.domains {
                row.push(Cell::Num(r.loss.get(d).copied(), None));
            }
            tb.rows.push(row);
        }
        tb
    }

    /// Parameters of one law on one domain.
    pub(super) fn params_table(&self, r: &Fits, domain: &str) -> Table {
        let law = r.law;
        let mut head = vec!["mixture", "model size"];
        head.extend(law.param_names().iter().copied());
        head.extend([
            "RMSD ln L",
            "points",
            "held-out error",
            "resamples fitted",
            "at a bound (not determined)",
        ]);
        let mut tb = Table::new(
            format!("{} law {} — {domain}", law.name(), law.formula()),
            &head,
        );
        for (g, k) in r.on(domain) {
            let (m, size) = who(k);
            let mut row = vec![Cell::text(m), Cell::text(size)];
            for p in law.param_names() {
                row.push(Cell::Num(Some(g.params[*p]), g.ci95.get(*p).copied()));
            }
            row.push(Cell::number(g.rmsd_log));
            row.push(Cell::text(g.n_points.to_string()));
            row.push(match &g.holdout {
                Some(h) => Cell::Pct(h.mean_rel_error),
                None => Cell::text("—"),
            });
            row.push(Cell::text(if g.bootstrap.drawn == 0 {
                "—".to_string()
            } else {
                format!("{} of {}", g.bootstrap.fitted, g.bootstrap.drawn)
            }));
            row.push(Cell::text(if g.at_bound.is_empty() {
                "none".to_string()
            } else {
                g.at_bound.join(", ")
            }));
            tb.rows.push(row);
        }
        tb
    }

    /// How well each law predicts the budget (or size) it was fitted without.
    pub(super) fn holdout_table(&self) -> Table {
        let mut tb = self.headline_table(
            "Held-out check",
            "fit without the largest budget (joint law: largest size), predict it",
            &[
                "law",
                "mixture",
                "model size",
                "held out",
                "fitted on",
                "mean |L̂−L|/L",
                "max |L̂−L|/L",
            ],
        );
        for r in self.laws() {
            for (g, k) in r.on(self.headline()) {
                if let Some(h) = &g.holdout {
                    let (m, size) = who(k);
                    tb.rows.push(vec![
                        Cell::text(r.law.name()),
                        Cell::text(m),
                        Cell::text(size),
                        Cell::text(format!("{} = {}", h.axis, si(h.held_out))),
                        Cell::text(format!("{} points", h.n_fit)),
                        Cell::Pct(h.mean_rel_error),
                        Cell::Pct(h.max_rel_error),
                    ]);
                }
            }
        }
        tb
    }

    /// Where each curve flattens: the doubling plateau and the distance to L∞.
    pub(super) fn plateau_table(&self) -> Table {
        let o = self
            .laws()
            .first()
            .map(|r| r.options.clone())
            .unwrap_or_default();
        let (eps, margin) = (num(100.0 * o.plateau_eps), num(100.0 * o.plateau_margin));
        let margin_head = format!("within {margin}% of L∞ from D");
        let mut tb = Table::new(
            format!(
                "Plateaus — {}: tokens after which a doubling of D gains < {eps}% of the loss (about the gain per doubling where SynthLLM's 8B model approaches its ceiling), and from which the loss is within {margin}% of its asymptote L∞; searched up to {}× each curve's largest budget",
                self.headline(),
                num(o.plateau_search)
            ),
            &["law", "mixture", "model size", "L∞", "doubling plateau D", &margin_head],
        );
        for r in self.laws() {
            for (g, k) in r.on(self.headline()) {
                let (m, size) = who(k);
                // An asymptote at its bound is not determined by the data: neither it nor
                // the distance to it is printed as a result.
                let e_free = !g.at_bound.iter().any(|b| b == "E");
                let undetermined = || Cell::text("— (E at a bound: not determined)");
                for p in &g.derived.plateau {
                    let size = p.params.map_or(size.clone(), fmt_params);
                    tb.rows.push(vec![
                        Cell::text(r.law.name()),
                        Cell::text(m.clone()),
                        Cell::text(size),
                        if e_free {
                            Cell::number(p.asymptote)
                        } else {
                            undetermined()
                        },
                        plateau_cell(
                            p.doubling_tokens,
                            p.doubling_tokens_ci95,
                            p.doubling_extrapolated,
                            p,
                        ),
                        if e_free {
                            plateau_cell(
                                p.margin_tokens,
                                p.margin_tokens_ci95,
                                p.margin_extrapolated,
                                p,
                            )
                        } else {
                            undetermined()
                        },
                    ]);
                }
            }
        }
        tb
    }

    /// Speed-ups at the target loss read off the fitted curves.
    pub(super) fn speedup_table(&self) -> Table {
        let base = &self.analysis.config.baseline;
        let mut tb = self.headline_table(
            &format!("Speed-ups over {base}"),
            &format!("D_{base}(L*) / D_mixture(L*) read off the fitted curves"),
            &[
                "law",
                "mixture",
                "model size",
                "target loss L*",
                &format!("D_{base}(L*)"),
                "D_mixture(L*)",
                "speed-up",
            ],
        );
        for r in self.with_baseline() {
            for (s, key) in self.on_headline(r, &r.speedups, |s| s.pair.mixture_group) {
                let size = s.params.or(key.params).map_or("—".into(), fmt_params);
                tb.rows.push(vec![
                    Cell::text(r.law.name()),
                    Cell::text(key.mixture()),
                    Cell::text(size),
                    Cell::number(s.target_loss),
                    Cell::Num(s.tokens_baseline, None),
                    Cell::Num(s.tokens_mixture, None),
                    Cell::Est(
                        s.speedup,
                        s.speedup_ci95,
                        Reach::of(s.extrapolated, s.beyond_data),
                    ),
                ]);
            }
        }
        tb
    }

    /// An empty table titled "{what} — {the headline domain}: {detail}".
    fn headline_table(&self, what: &str, detail: &str, head: &[&str]) -> Table {
        Table::new(format!("{what} — {}: {detail}", self.headline()), head)
    }

    /// The fits that read speed-ups and multipliers over the baseline: rectified and joint.
    fn with_baseline(&self) -> impl Iterator<Item = &Fits> {
        [&self.analysis.rectified, &self.analysis.chinchilla]
            .into_iter()
            .flatten()
    }

    /// The items of `r` (speed-ups, multipliers) whose group lies on the headline domain,
    /// each with its group's key.
    fn on_headline<'a, T>(
        &'a self,
        r: &'a Fits,
        items: &'a [T],
        group: fn(&T) -> usize,
    ) -> impl Iterator<Item = (&'a T, &'a Key)> + 'a {
        let headline = self.headline();
        items
            .iter()
            .map(move |x| (x, r.key(group(x))))
            .filter(move |(_, k)| k.domain == headline)
    }

    /// Effective-data multipliers k of each mixture over the baseline.
    pub(super) fn multiplier_table(&self) -> Table {
        let base = &self.analysis.config.baseline;
        let mut tb = self.headline_table(
            &format!("Effective-data multipliers over {base}"),
            &format!(
                "k with L_mixture(D) = L_{base}(k·D), the {base} law shared, fitted to every point of both curves (Hernandez et al. 2021); k > 1: a mixture token is worth k {base} tokens"
            ),
            &["law", "mixture", "model size", "k", "RMSD ln L", "points", "resamples fitted"],
        );
        for r in self.with_baseline() {
            for (m, key) in self.on_headline(r, &r.multipliers, |m| m.pair.mixture_group) {
                tb.rows.push(vec![
                    Cell::text(r.law.name()),
                    Cell::text(key.mixture()),
                    Cell::text(key.params.map_or("all sizes".into(), fmt_params)),
                    match m.k {
                        Some(k) => Cell::Est(
                            Some(k),
                            m.ci95,
                            Reach::of(m.extrapolated, Some(m.beyond_data)),
                        ),
                        None => Cell::text("not identified (k at the edge of 1e-3 … 1e3)"),
                    },
                    Cell::number(m.rmsd_log),
                    Cell::text(m.n_points.to_string()),
                    Cell::text(format!("{} of {}", m.resamples[1], m.resamples[0])),
                ]);
            }
        }
        tb
    }

    /// The optimal synthetic share at each (N, D).
    pub(super) fn share_table(&self) -> Table {
        let mut tb = self.headline_table(
            "Optimal synthetic share",
            "argmin over share of a quadratic in share of the fitted ln L, within the shares run",
            &[
                "kind",
                "law",
                "model size",
                "D",
                "shares run",
                "optimal share",
            ],
        );
        for s in &self.analysis.optimal_share {
            for x in s.report.optimal_ratios.iter() {
                // The family's members share its domain and size: read the first one's key.
                let Some(key) = x.members.first().map(|&i| s.report.key(i)) else {
                    continue;
                };
                if key.domain != self.headline() {
                    continue;
                }
                let size = x.params.or(key.params).map_or("—".into(), fmt_params);
                tb.rows.push(vec![
                    Cell::text(s.kind.clone()),
                    Cell::text(s.report.law.name()),
                    Cell::text(size),
                    Cell::number(x.tokens),
                    Cell::text(
                        x.ratios
                            .iter()
                            .map(|r| num(*r))
                            .collect::<Vec<_>>()
                            .join(", "),
                    ),
                    Cell::Est(
                        x.optimal_ratio,
                        x.optimal_ratio_ci95,
                        if x.grid_determined {
                            Reach::Grid
                        } else {
                            Reach::Inside
                        },
                    ),
                ]);
            }
        }
        tb
    }

    /// Compute-optimal N* and D* of the joint law.
    pub(super) fn compute_table(&self) -> Table {
        let mut tb = self.headline_table(
            "Compute-optimal splits (joint law)",
            "N* and D* minimizing L at C = 6ND",
            &["mixture", "FLOPs C", "N*", "D*", "D*/N*", "L(N*, D*)"],
        );
        if let Some(r) = &self.analysis.chinchilla {
            for (g, k) in r.on(self.headline()) {
                for c in &g.derived.compute_optimal {
                    tb.rows.push(vec![
                        Cell::text(who(k).0),
                        Cell::number(c.flops),
                        Cell::Num(Some(c.params), c.params_ci95),
                        Cell::Num(Some(c.tokens), c.tokens_ci95),
                        Cell::number(c.tokens_per_param),
                        Cell::Est(Some(c.loss), c.loss_ci95, Reach::of(c.extrapolated, None)),
                    ]);
                }
            }
        }
        tb
    }
}
