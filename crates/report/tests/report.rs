//! End to end: synthetic results tables drawn from known laws → `build_report` → the fits
//! recover the generating parameters (the closed forms are the oracle), every figure
//! decodes, the numbers printed in the HTML and Markdown are the fit JSON's, and missing
//! mixtures, sizes and baselines degrade into notes instead of failures.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;
use synthscale_report::format::{key_num, num};
use synthscale_report::plots::Fig;
use synthscale_report::{build_report, ReportConfig, ReportError, ReportInput, ReportOutput};

/// A mixture of the synthetic tables: name, natural, rephrased, textbook shares.
type Mix = (&'static str, f64, f64, f64);

const MIXES: [Mix; 4] = [
    ("natural", 1.0, 0.0, 0.0),
    ("reph-1/3", 2.0 / 3.0, 1.0 / 3.0, 0.0),
    ("reph-2/3", 1.0 / 3.0, 2.0 / 3.0, 0.0),
    ("textbook-1/2", 0.5, 0.0, 0.5),
];

/// The joint law's generating surface, `L = E + A/N^alpha + B_m/D^beta`.
const E: f64 = 1.5;
const A: f64 = 60.0;
const ALPHA: f64 = 0.3;
const BETA: f64 = 0.35;
/// The best synthetic share of the generating B(s): `B0·exp(K (s − S_STAR)²)` is smallest
/// at s = S_STAR, and so is the loss at every (N, D).
const S_STAR: f64 = 0.3;

fn b_of(m: &Mix) -> f64 {
    let s = m.2 + m.3;
    let textbook_penalty = if m.3 > 0.0 { 1.3 } else { 1.0 };
    300.0 * (1.5 * (s - S_STAR).powi(2)).exp() * textbook_penalty
}

/// Writes `results.csv` in the DESIGN.md contract (plus `seed` and `size_name` columns a
/// reader must ignore): two seeds whose noise cancels in their mean, two domains at ±3%
/// of the law (their mean is the law), ±0.1% deterministic noise per run, and a
/// non-final evaluation at half the budget that the report must not fit.
fn write_results(
    dir: &Path,
    mixes: &[Mix],
    sizes: &[f64],
    budgets: usize,
    law: &dyn Fn(&Mix, f64, f64) -> f64,
    skip: &dyn Fn(&Mix, f64) -> bool,
) {
    let mut s = String::from(
        "run_id,params,non_embedding_params,tokens,flops,mixture,natural_ratio,rephrased_ratio,textbook_ratio,eval_domain,step,loss,final,seed,size_name\n",
    );
    let mut i = 0;
    for m in mixes {
        for &n in sizes {
            if skip(m, n) {
                continue;
            }
            for j in 0..budgets {
                let d = 2e6 * 2f64.powi(j as i32);
                let l = law(m, n, d);
                for seed in 0..2 {
                    i += 1;
                    let seed_noise = if seed == 0 { 1.002 } else { 0.998 };
                    let run = format!("{}-{n}-{d}-s{seed}", m.0);
                    for (dom, f) in [("web", 1.03), ("books", 0.97)] {
                        let noise = 1.0 + 0.001 * ((7 * i + dom.len()) as f64).sin();
                        let loss = l * f * noise * seed_noise;
                        for (tokens, lo, fin, step) in
                            [(d / 2.0, loss * 1.2, "false", 50), (d, loss, "true", 100)]
                        {
                            writeln!(
                                s,
                                "{run},{n},{},{tokens},{},{},{},{},{},{dom},{step},{lo},{fin},{seed},s{n}",
                                0.8 * n,
                                6.0 * n * tokens,
                                m.0,
                                m.1,
                                m.2,
                                m.3
                            )
                            .unwrap();
                        }
                    }
                }
            }
        }
    }
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("results.csv"), s).unwrap();
}

fn chinchilla(m: &Mix, n: f64, d: f64) -> f64 {
    E + A / n.powf(ALPHA) + b_of(m) / d.powf(BETA)
}

fn report(dir: &Path, bootstrap: usize) -> ReportOutput {
    build_report(&ReportInput {
        results_dir: dir.to_path_buf(),
        manifest: None,
        config: ReportConfig {
            bootstrap,
            ..ReportConfig::default()
        },
        out_dir: None,
    })
    .unwrap()
}

fn json(out: &ReportOutput) -> Value {
    serde_json::from_str(&std::fs::read_to_string(&out.json).unwrap()).unwrap()
}

fn groups<'a>(j: &'a Value, law: &str) -> Vec<&'a Value> {
    j[law]["groups"]
        .as_array()
        .map_or(Vec::new(), |g| g.iter().collect())
}

fn close(got: f64, want: f64, rel: f64, what: &str) {
    assert!(
        ((got - want) / want).abs() <= rel,
        "{what}: {got} vs {want} (tolerance {rel})"
    );
}

/// Every PNG decodes to the size it claims, and every SVG parses as XML with an `svg`
/// root that holds text.
fn check_figures(out: &ReportOutput) -> Vec<(PathBuf, String)> {
    assert_eq!(out.figures.len(), Fig::ALL.len());
    let mut svgs = Vec::new();
    for f in &out.figures {
        let file = std::fs::File::open(&f.png).unwrap();
        let mut dec = png::Decoder::new(file).read_info().unwrap();
        let mut buf = vec![0; dec.output_buffer_size()];
        let info = dec.next_frame(&mut buf).unwrap();
        assert!(info.width >= 500 && info.height >= 400, "{:?}", f.png);
        // Not blank: more than a few distinct colours.
        let colours: BTreeSet<&[u8]> = buf
            .chunks(3)
            .take(info.width as usize * info.height as usize)
            .collect();
        assert!(colours.len() > 10, "{:?}: {} colours", f.png, colours.len());
        let text = std::fs::read_to_string(&f.svg).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap();
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let all: String = doc
            .descendants()
            .filter(|n| n.is_text())
            .map(|n| n.text().unwrap_or(""))
            .collect::<Vec<_>>()
            .join(" ");
        assert!(!f.caption.is_empty());
        svgs.push((f.svg.clone(), all));
    }
    svgs
}

/// The HTML shows each number as `<span data-v="FULL">SHORT</span>`: FULL must be the fit
/// JSON's value exactly and SHORT its 4-digit form; the Markdown must show SHORT.
fn assert_printed(html: &str, md: &str, v: f64, what: &str) {
    let span = format!("<span data-v=\"{}\">{}</span>", key_num(v), num(v));
    assert!(html.contains(&span), "{what}: {span} not in the HTML");
    assert!(
        md.contains(&num(v)),
        "{what}: {} not in the Markdown",
        num(v)
    );
}

#[test]
fn report_recovers_known_laws_and_prints_exactly_the_fit_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("results");
    write_results(&dir, &MIXES, &[1e6, 3e6, 1e7], 6, &chinchilla, &|_, _| {
        false
    });
    let out = report(&dir, 40);
    let j = json(&out);

    // The joint law per mixture recovers the generating surface.
    let cg = groups(&j, "chinchilla");
    assert_eq!(cg.len(), 4, "one joint fit per mixture on the mean");
    for g in &cg {
        let m = MIXES.iter().find(|m| m.0 == g["group"]["mixture"]).unwrap();
        let p = &g["params"];
        close(p["alpha"].as_f64().unwrap(), ALPHA, 0.03, "alpha");
        close(p["beta"].as_f64().unwrap(), BETA, 0.01, "beta");
        close(p["E"].as_f64().unwrap(), E, 0.02, "E");
        close(p["A"].as_f64().unwrap(), A, 0.1, "A");
        close(p["B"].as_f64().unwrap(), b_of(m), 0.03, "B");
    }
    // Speed-ups: with A, alpha, E, beta shared, D_nat(L*)/D_m(L*) = (B_nat/B_m)^(1/beta)
    // at every size and target (closed form of the generating law).
    let nat = b_of(&MIXES[0]);
    for law in ["chinchilla", "rectified"] {
        let sp = j[law]["speedups"].as_array().unwrap();
        assert_eq!(sp.len(), 9, "{law}: 3 mixtures × 3 sizes");
        for s in sp {
            let name = s["mixture"].as_str().unwrap();
            let m = MIXES
                .iter()
                .find(|m| name.ends_with(&format!("mixture={}", m.0)))
                .unwrap();
            let want = (nat / b_of(m)).powf(1.0 / BETA);
            close(
                s["speedup"].as_f64().unwrap(),
                want,
                0.03,
                &format!("{law} speed-up {name}"),
            );
        }
    }
    // The optimal rephrased share at every (N, D) is the generating argmin, 0.3.
    let shares = j["optimal_share"].as_array().unwrap();
    assert_eq!(shares.len(), 1, "rephrased only: textbook has two shares");
    let ratios = shares[0]["report"]["optimal_ratios"].as_array().unwrap();
    assert_eq!(ratios.len(), 18, "3 sizes × 6 budgets");
    for r in ratios {
        let got = r["optimal_ratio"].as_f64().unwrap();
        assert!((got - S_STAR).abs() < 0.02, "optimal share {got}");
        let [lo, hi] = [0, 1].map(|i| r["optimal_ratio_ci95"][i].as_f64().unwrap());
        assert!(
            lo <= got + 1e-12 && got <= hi + 1e-12,
            "{lo} ≤ {got} ≤ {hi}"
        );
    }
    // Held-out: the rectified fits predict their largest budget; data from a power law in
    // D with 0.1% noise are predicted to well under 1%.
    for g in groups(&j, "rectified") {
        let h = &g["holdout"];
        assert!(
            h["mean_rel_error"].as_f64().unwrap() < 0.01,
            "{}",
            g["name"]
        );
    }
    assert!(
        j["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str().unwrap().contains("optimal textbook share")),
        "{}",
        j["skipped"]
    );

    // Files: every figure decodes; the axes are labelled with units.
    let svgs = check_figures(&out);
    assert!(svgs[0].1.contains("training tokens D"), "{}", svgs[0].1);
    assert!(svgs[0].1.contains("validation loss (nats/token)"));
    assert!(svgs[0].1.contains("1M params"), "legend names sizes");
    assert!(svgs[5].1.contains("model parameters N"));
    for f in &out.figures {
        assert!(f.missing.is_empty(), "{:?}: {:?}", f.fig, f.missing);
    }

    // The report prints the fit JSON's numbers, and needs no network.
    let html = std::fs::read_to_string(&out.html).unwrap();
    let md = std::fs::read_to_string(&out.markdown).unwrap();
    assert!(
        !html.contains("<script") && !html.contains("src=\"http") && !html.contains("href=\"http")
    );
    assert_eq!(html.matches("src=\"data:image/png;base64,").count(), 6);
    for f in &out.figures {
        assert!(md.contains(&format!(
            "({})",
            f.png.file_name().unwrap().to_string_lossy()
        )));
        assert!(out.dir.join(f.png.file_name().unwrap()).is_file());
    }
    let mut checked = 0;
    for law in ["rectified", "power", "chinchilla"] {
        for g in groups(&j, law) {
            for (name, v) in g["params"].as_object().unwrap() {
                assert_printed(
                    &html,
                    &md,
                    v.as_f64().unwrap(),
                    &format!("{law} {} {name}", g["name"]),
                );
                checked += 1;
            }
            for (name, iv) in g["ci95"].as_object().unwrap() {
                for x in iv.as_array().unwrap() {
                    let what = format!("{law} {} {name} interval {iv}", g["name"]);
                    assert_printed(&html, &md, x.as_f64().unwrap(), &what);
                }
            }
            if let Some(e) = g["holdout"]["mean_rel_error"].as_f64() {
                let pct = format!("<span data-v=\"{}\">{:.3}%</span>", key_num(e), 100.0 * e);
                assert!(html.contains(&pct), "held-out {pct}");
            }
        }
        for s in j[law]["speedups"].as_array().into_iter().flatten() {
            assert_printed(&html, &md, s["speedup"].as_f64().unwrap(), "speed-up");
        }
    }
    for r in ratios {
        assert_printed(
            &html,
            &md,
            r["optimal_ratio"].as_f64().unwrap(),
            "optimal share",
        );
    }
    // 12 rectified × 4 + 12 power × 3 + 4 joint × 5 parameters.
    assert_eq!(checked, 48 + 36 + 20);
    // Per-domain fits are in the JSON (and folded in the HTML).
    let pd = j["per_domain"].as_array().unwrap();
    assert_eq!(pd.len(), 2);
    for d in pd {
        for g in d["chinchilla"]["groups"].as_array().unwrap() {
            assert_printed(
                &html,
                &md,
                g["params"]["beta"].as_f64().unwrap(),
                "per-domain beta",
            );
        }
    }
}

/// The rectified law's closed form: the fit of B/(D_l + D^beta) + E to one size recovers
/// its parameters, and D(L*) = (B/(L* − E) − D_l)^(1/beta) gives the speed-ups.
#[test]
fn rectified_curves_are_recovered_from_one_size() {
    let (dl, beta, e) = (500.0_f64, 0.5_f64, 2.0_f64);
    let b = |m: &Mix| 2000.0 * (1.0 + 0.5 * (m.2 - 0.3).powi(2));
    let rect = move |m: &Mix, _n: f64, d: f64| b(m) / (dl + d.powf(beta)) + e;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    // Budgets 2e4 … 2.56e6 straddle the bend at D_l^(1/beta) = 2.5e5.
    let mixes = &MIXES[..3];
    let mut s = String::from("run_id,params,non_embedding_params,tokens,flops,mixture,natural_ratio,rephrased_ratio,textbook_ratio,eval_domain,step,loss,final\n");
    for m in mixes {
        for k in 0..8 {
            let d = 2e4 * 2f64.powi(k);
            let l = rect(m, 0.0, d) * (1.0 + 2e-4 * ((k + 3) as f64).sin());
            writeln!(
                s,
                "{}-{k},5e6,4e6,{d},{},{},{},{},{},web,1,{l},true",
                m.0,
                3e7 * d,
                m.0,
                m.1,
                m.2,
                m.3
            )
            .unwrap();
        }
    }
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("results.csv"), s).unwrap();
    let out = report(&dir, 20);
    let j = json(&out);
    let rg = groups(&j, "rectified");
    assert_eq!(rg.len(), 3);
    for g in &rg {
        let m = mixes.iter().find(|m| m.0 == g["group"]["mixture"]).unwrap();
        let p = &g["params"];
        close(p["E"].as_f64().unwrap(), e, 0.02, "E");
        close(p["beta"].as_f64().unwrap(), beta, 0.05, "beta");
        close(p["D_l"].as_f64().unwrap(), dl, 0.25, "D_l");
        close(p["B"].as_f64().unwrap(), b(m), 0.15, "B");
    }
    let dfor = |m: &Mix, l: f64| (b(m) / (l - e) - dl).powf(1.0 / beta);
    for s in j["rectified"]["speedups"].as_array().unwrap() {
        let name = s["mixture"].as_str().unwrap();
        let m = mixes
            .iter()
            .find(|m| name.ends_with(&format!("mixture={}", m.0)))
            .unwrap();
        let l = s["target_loss"].as_f64().unwrap();
        close(
            s["speedup"].as_f64().unwrap(),
            dfor(&mixes[0], l) / dfor(m, l),
            0.03,
            name,
        );
    }
    // One size: the joint law is not fitted, and its figure says why.
    assert!(j["chinchilla"].is_null());
    let joint = &out.figures[5];
    assert!(
        joint.missing[0].contains("1 size(s)"),
        "{:?}",
        joint.missing
    );
    let svgs = check_figures(&out);
    assert!(svgs[5].1.contains("Joint law not fitted"), "{}", svgs[5].1);
}

/// A results table missing the baseline mixture, and one mixture missing a size: the
/// report is written, and the figures name what is missing.
#[test]
fn missing_mixture_and_size_degrade_into_notes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    write_results(&dir, &MIXES[1..], &[1e6, 3e6], 5, &chinchilla, &|m, n| {
        m.0 == "textbook-1/2" && n == 3e6
    });
    let out = report(&dir, 0);
    let j = json(&out);
    assert!(
        j["chinchilla"].is_null(),
        "2 sizes cannot determine the joint law"
    );
    assert_eq!(
        groups(&j, "rectified").len(),
        5,
        "2 sizes × 3 mixtures, less one"
    );
    let missing = |f: Fig| {
        out.figures
            .iter()
            .find(|x| x.fig == f)
            .unwrap()
            .missing
            .join(" | ")
    };
    assert!(
        missing(Fig::LossTokens).contains("textbook-1/2: no runs at 3M params"),
        "{}",
        missing(Fig::LossTokens)
    );
    assert!(
        missing(Fig::Speedup).contains("no `natural` mixture"),
        "{}",
        missing(Fig::Speedup)
    );
    assert!(
        missing(Fig::Share).contains("no `natural` mixture"),
        "{}",
        missing(Fig::Share)
    );
    assert!(
        missing(Fig::Joint).contains("2 size(s)"),
        "{}",
        missing(Fig::Joint)
    );
    let svgs = check_figures(&out);
    assert!(svgs[3].1.contains("No speed-up to show"));
    let html = std::fs::read_to_string(&out.html).unwrap();
    assert!(html.contains("no runs at 3M params"));
    assert!(out
        .warnings
        .iter()
        .any(|w| w.contains("no `natural` mixture")));
}

#[test]
fn bad_results_fail_with_the_file_line_and_column_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |csv: &str, cfg: ReportConfig| {
        let dir = tmp.path().join("bad");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("results.csv"), csv).unwrap();
        let r = build_report(&ReportInput {
            results_dir: dir.clone(),
            manifest: None,
            config: cfg,
            out_dir: None,
        });
        assert!(!dir.join("report").exists(), "nothing written on bad input");
        r.unwrap_err()
    };
    let head = "run_id,params,non_embedding_params,tokens,flops,mixture,natural_ratio,rephrased_ratio,textbook_ratio,eval_domain,step,loss,final\n";
    let e = run(
        "run_id,params,tokens,loss\nr,1,2,3\n",
        ReportConfig::default(),
    );
    assert!(
        matches!(&e, ReportError::MissingColumn { column, .. } if column == "non_embedding_params"),
        "{e}"
    );
    assert!(e.is_bad_input());
    let e = run(
        &format!("{head}r,1e6,8e5,1e6,6e12,natural,1,0,0,web,1,3.5,maybe\n"),
        ReportConfig::default(),
    );
    assert!(
        e.to_string().contains("results.csv:2: column `final`"),
        "{e}"
    );
    let e = run(
        &format!("{head}r,1e6,8e5,1e6,6e12,natural,1,0,0,web,1,-3.5,true\n"),
        ReportConfig::default(),
    );
    assert!(
        e.to_string().contains("column `loss`: -3.5 must be > 0"),
        "{e}"
    );
    let e = run(
        &format!("{head}r,1e6,8e5,1e6,6e12,natural,0.5,0,0,web,1,3.5,true\n"),
        ReportConfig::default(),
    );
    assert!(e.to_string().contains("sum to 0.5, not 1"), "{e}");
    let e = run(
        &format!("{head}r,1e6,8e5,1e6,6e12,natural,1,0,0,web,1,3.5,false\n"),
        ReportConfig::default(),
    );
    assert!(e.to_string().contains("none with final = true"), "{e}");
    let e = run(
        &format!("{head}r,1e6,8e5,1e6,6e12,natural,1,0,0,web,1,3.5,true\n"),
        ReportConfig {
            headline_domain: "code".into(),
            ..ReportConfig::default()
        },
    );
    assert!(
        e.to_string()
            .contains("\"code\" is not among the results' domains (mean, web)"),
        "{e}"
    );
}

/// A curve whose loss rises with D fits no law: it is left out with a note, and the other
/// mixtures are reported.
#[test]
fn a_curve_no_law_fits_is_left_out_not_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("u");
    let law = |m: &Mix, n: f64, d: f64| {
        if m.0 == "reph-2/3" {
            2.0 + 1e-3 * d.powf(0.3)
        } else {
            chinchilla(m, n, d)
        }
    };
    write_results(&dir, &MIXES[..3], &[3e6], 6, &law, &|_, _| false);
    let out = report(&dir, 0);
    let j = json(&out);
    let names: Vec<&str> = groups(&j, "rectified")
        .iter()
        .map(|g| g["group"]["mixture"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["natural", "reph-1/3"], "{}", j["skipped"]);
    assert!(
        out.warnings
            .iter()
            .any(|w| w.contains("mixture=reph-2/3") && w.contains("did not converge")),
        "{:?}",
        out.warnings
    );
    check_figures(&out);
}

/// The typed boundary between fit and report: mixtures whose names hold the characters of
/// group names (`,` and `=`) are read back by key, not by parsing names. The same table
/// carries a `unigram_loss` column and two seeds per run, so fit.json's `unigram_loss` (the
/// column's values, and their mean over domains) and `seed_noise` (closed form: two seeds at
/// ×1.004 and ×0.996 give an SD of ln L of ln(1.004/0.996)/√2 in every cell) are checked,
/// and the fits' Huber threshold is 1.345 times that SD.
#[test]
fn names_with_commas_are_read_by_key_and_unigram_and_seed_noise_reach_the_fit_json() {
    let (dl, beta, e) = (500.0_f64, 0.5_f64, 2.0_f64);
    let mixes: [(&str, f64, f64, f64); 3] = [
        ("natural", 1.0, 0.0, 0.0),
        ("reph,params=7", 2.0 / 3.0, 1.0 / 3.0, 0.0),
        ("a=b,mixture=natural", 1.0 / 3.0, 2.0 / 3.0, 0.0),
    ];
    let b = |r: f64| 2000.0 * (1.0 + 0.5 * (r - 0.3).powi(2));
    let unigram = |i: usize, dom: &str| 7.0 + i as f64 + if dom == "web" { 0.25 } else { 0.0 };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    let mut s = String::from("run_id,params,non_embedding_params,tokens,flops,mixture,natural_ratio,rephrased_ratio,textbook_ratio,eval_domain,step,loss,final,seed,unigram_loss\n");
    for (i, m) in mixes.iter().enumerate() {
        for k in 0..8 {
            let d = 2e4 * 2f64.powi(k);
            let l = (b(m.2) / (dl + d.powf(beta)) + e) * (1.0 + 2e-4 * ((k + 3) as f64).sin());
            for (seed, f) in [(0, 1.004), (1, 0.996)] {
                for (dom, g) in [("web", 1.01), ("books", 0.99)] {
                    writeln!(
                        s,
                        "\"{}-{k}-{seed}\",5e6,4e6,{d},{},\"{}\",{},{},{},{dom},1,{},true,{seed},{}",
                        m.0,
                        3e7 * d,
                        m.0,
                        m.1,
                        m.2,
                        m.3,
                        l * f * g,
                        unigram(i, dom)
                    )
                    .unwrap();
                }
            }
        }
    }
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("results.csv"), s).unwrap();
    let out = report(&dir, 20);
    let j = json(&out);

    // Unigram losses: the column's values, and on `mean` their mean over both domains.
    let u = j["unigram_loss"].as_array().unwrap();
    for (i, m) in mixes.iter().enumerate() {
        let get = |dom: &str| {
            u.iter()
                .find(|x| x["mixture"] == m.0 && x["domain"] == dom)
                .and_then(|x| x["loss"].as_f64())
                .unwrap()
        };
        close(get("web"), unigram(i, "web"), 1e-12, "unigram web");
        close(
            get("mean"),
            (unigram(i, "web") + unigram(i, "books")) / 2.0,
            1e-12,
            "unigram mean",
        );
    }
    // Seed noise, pooled over the 24 cells of two seeds.
    let want = (1.004f64 / 0.996).ln() / 2f64.sqrt();
    let sn = j["seed_noise"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["domain"] == "mean")
        .unwrap();
    close(sn["sd_log"].as_f64().unwrap(), want, 1e-6, "seed sd");
    assert_eq!(sn["cells"], 24);
    assert_eq!(sn["dof"], 24);
    for g in groups(&j, "rectified") {
        close(
            g["huber_delta"].as_f64().unwrap(),
            1.345 * want,
            1e-6,
            "delta",
        );
    }

    // Every speed-up and multiplier is printed under its full mixture name, and the
    // findings state the unigram gap and the seed noise.
    let md = std::fs::read_to_string(&out.markdown).unwrap();
    for m in &mixes[1..] {
        assert!(
            md.contains(&format!("5M params, {} reaches L*", m.0)),
            "no speed-up finding for {}:\n{md}",
            m.0
        );
        assert!(
            md.contains(&format!("| rectified | {} | 5M params |", m.0)),
            "no table row for {}:\n{md}",
            m.0
        );
    }
    assert!(md.contains("nats below the unigram loss"), "{md}");
    assert!(md.contains("Seed-to-seed noise"), "{md}");
}
