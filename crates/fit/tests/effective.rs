//! Effective-data multipliers and per-budget speed-ups against curves built to have known
//! answers (Hernandez et al. 2021's effective data: `L_mix(D) = L_base(k·D)`).

use synthscale_fit::bootstrap::SplitMix64;
use synthscale_fit::input::Group;
use synthscale_fit::{run_study, BootstrapOptions, Law, Point, StudyOptions};

/// The generator: one rectified law `B/(D_l + D^beta) + E` per model size, the mixtures'
/// curves the baseline's read at `k·D`, 8 doubling budgets from 16k to 2M tokens, and
/// multiplicative log-normal noise of 0.2% on every loss (seeded).
fn curves(ks: &[(&str, f64)]) -> Vec<Group> {
    let sizes = [
        ("small", 600.0, 100.0, 3.2, 0.5),
        ("medium", 700.0, 100.0, 3.0, 0.5),
        ("large", 800.0, 100.0, 2.8, 0.5),
    ];
    let mut rng = SplitMix64::new(20_261_203);
    let mut groups = Vec::new();
    for (mixture, k) in ks {
        for (size, b, dl, e, beta) in sizes {
            let points = (0..8)
                .map(|i| {
                    let d = 16_384.0 * 2f64.powi(i);
                    let clean = b / (dl + (k * d).powf(beta)) + e;
                    Point {
                        d,
                        n: 1.0,
                        loss: clean * (0.002 * rng.normal()).exp(),
                    }
                })
                .collect();
            groups.push(Group {
                keys: vec![
                    ("mixture".into(), mixture.to_string()),
                    ("size".into(), size.into()),
                ],
                points,
            });
        }
    }
    groups
}

/// Oracle: construction. k = 3 and k = 0.5 are recovered within 10% at every size, and every
/// number that reads a curve past its data says so.
#[test]
fn a_known_multiplier_is_recovered_and_extrapolation_is_marked() {
    let groups = curves(&[("natural", 1.0), ("good", 3.0), ("poor", 0.5)]);
    let opts = StudyOptions {
        law: Law::Rectified,
        bootstrap: BootstrapOptions {
            resamples: 40,
            ..BootstrapOptions::default()
        },
        baseline: Some(("mixture".into(), "natural".into())),
        ..StudyOptions::default()
    };
    let r = run_study(&groups, &opts).unwrap();
    assert_eq!(r.multipliers.len(), 6, "two mixtures × three sizes");
    for m in &r.multipliers {
        let want = if m.pair.mixture.contains("mixture=good") {
            3.0
        } else {
            0.5
        };
        let k =
            m.k.unwrap_or_else(|| panic!("{}: k not identified", m.pair.mixture));
        assert!(
            (k / want - 1.0).abs() < 0.10,
            "{}: k = {k}, want {want}",
            m.pair.mixture
        );
        let [lo, hi] = m.ci95.unwrap();
        assert!(
            lo <= k && k <= hi,
            "{}: {k} outside [{lo}, {hi}]",
            m.pair.mixture
        );
        assert!(m.resamples[1] > 0);
        // Mapped to k·D the mixture's budgets run past the baseline's (k = 3: above its
        // largest budget; k = 0.5: below its smallest), by about k or 1/k.
        assert!(m.extrapolated, "{}", m.pair.mixture);
        let far = if want > 1.0 { want } else { 1.0 / want };
        assert!(
            (m.beyond_data / far - 1.0).abs() < 0.15,
            "{}: {}",
            m.pair.mixture,
            m.beyond_data
        );
    }

    // Per-budget speed-ups: D_base(L_mix(D)) / D ≈ k where the baseline is read inside its
    // data, marked extrapolated where it is not: the good mixture's losses at its last
    // budget(s) lie below the baseline's best, the poor mixture's first budget above its worst.
    assert_eq!(r.budget_speedups.len(), 6 * 8);
    for s in &r.budget_speedups {
        let want = if s.pair.mixture.contains("mixture=good") {
            3.0
        } else {
            0.5
        };
        let needs = want * s.tokens;
        let inside = (16_384.0 * 1.05..=2_097_152.0 / 1.05).contains(&needs);
        let outside = !(16_384.0 / 1.05..=2_097_152.0 * 1.05).contains(&needs);
        if inside {
            assert!(
                !s.extrapolated,
                "{} at {}: marked, needs {needs}",
                s.pair.mixture, s.tokens
            );
            // Read inside the data, the speed-up is the construction's k. (Read past it, it
            // is not: the good mixture's last budget reads 4.6 for k = 3 on this draw.)
            let x = s.speedup.unwrap();
            assert!(
                (x / want - 1.0).abs() < 0.15,
                "{} at {}: {x}",
                s.pair.mixture,
                s.tokens
            );
        }
        if outside {
            assert!(
                s.extrapolated,
                "{} at {}: unmarked, needs {needs}",
                s.pair.mixture, s.tokens
            );
            assert!(s.beyond_data.unwrap() > 1.0);
        }
    }

    // The target-loss speed-ups at L* = the baseline's loss at its largest budget: the poor
    // mixture needs 2× that budget, past its data: marked; the good one needs a third of it.
    for s in &r.speedups {
        if s.pair.mixture.contains("mixture=poor") {
            assert!(s.extrapolated, "{}", s.pair.mixture);
            assert!(s.beyond_data.unwrap() > 1.5, "{:?}", s.beyond_data);
        } else {
            assert!(!s.extrapolated, "{}: {:?}", s.pair.mixture, s.beyond_data);
        }
    }
    let json = serde_json::to_value(&r).unwrap();
    let m = &json["multipliers"][0];
    assert!(m["k"].is_number() && m["ci95"].is_array() && m["extrapolated"].is_boolean());
}
