//! `synthscale run`, the main job, end to end on a reduced quickstart: the bundled natural,
//! rephrased and textbook corpora → data → 30 runs → results → fits → report. Asserts that
//! the report and every figure exist and decode, that the numbers the report prints are the
//! fit JSON's, and that a second run does nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use synthscale_report::format::{key_num, num};

use common::run_in as run;

fn corpora() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/corpora")
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The quickstart's design cut down to seconds: one natural source and the two synthetic
/// kinds, 2 sizes × 5 budgets × 3 mixtures of tiny models.
fn manifest(dir: &Path) -> PathBuf {
    let c = corpora();
    let src = |name: &str, kind: &str, path: &str| {
        format!(
            "[[data.sources]]\nname = \"{name}\"\nkind = \"{kind}\"\ndomain = \"{name}\"\n\
             path = \"{}\"\n",
            c.join(path).display()
        )
    };
    let text = format!(
        "[data]\ntokenizer = {{ kind = \"bpe\", vocab_size = 512, max_train_bytes = 2_000_000 }}\n\
         validation_fraction = 0.05\nseq_len = 32\nmax_repeats = 1000.0\n\n{}{}{}\n\
         [sweep]\nsizes = [{{ name = \"s\", d_model = 16, n_layers = 1, n_heads = 1 }}, \
         {{ name = \"m\", d_model = 32, n_layers = 2, n_heads = 2 }}]\n\
         budgets = [{{ tokens = 2048 }}, {{ tokens = 4096 }}, {{ tokens = 8192 }}, \
         {{ tokens = 16384 }}, {{ tokens = 32768 }}]\n\
         [sweep.mixtures]\nnatural = {{ natural = 1.0 }}\n\
         rephrased-third = {{ natural = 0.67, rephrased = 0.33 }}\n\
         textbook-third = {{ natural = 0.67, textbook = 0.33 }}\n\
         [sweep.run_rule]\nevals_per_run = 1\neval_max_tokens = 1024\ncheckpoints_per_run = 1\n\
         micro_batch_size = 8\n\n[report]\nbootstrap = 20\nmean_domains = [\"kjv\"]\n",
        src("kjv", "natural", "natural/kjv.jsonl.gz"),
        src("wiki", "rephrased", "rephrased/rephrase-wiki.jsonl.gz"),
        src("textbook", "textbook", "textbook/textbook.jsonl.gz"),
    );
    let path = dir.join("mini.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn decode_png(path: &Path) -> (u32, u32) {
    let file = std::fs::File::open(path).unwrap();
    let mut dec = png::Decoder::new(file).read_info().unwrap();
    let mut buf = vec![0; dec.output_buffer_size()];
    let info = dec.next_frame(&mut buf).unwrap();
    (info.width, info.height)
}

#[test]
fn run_goes_from_manifest_to_report_and_a_second_run_does_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    manifest(d);
    let out = run(d, &["run", "mini.toml", "--jobs", "2"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap();
    assert!(
        last.ends_with("results/mini/report/report.html"),
        "the report's path is printed last: {last}"
    );
    assert!(stdout.contains("30 runs: 30 trained"), "{stdout}");
    let rep = d.join("results/mini/report");

    // Every figure exists and decodes: PNG with its size, SVG as XML with an <svg> root.
    let figures: Vec<PathBuf> = std::fs::read_dir(&rep)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    assert_eq!(figures.len(), 6, "{figures:?}");
    for png in &figures {
        let (w, h) = decode_png(png);
        assert!(w >= 500 && h >= 400, "{png:?}: {w}×{h}");
        let svg = std::fs::read_to_string(png.with_extension("svg")).unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        assert_eq!(doc.root_element().tag_name().name(), "svg", "{png:?}");
    }

    // The numbers the report prints are the fit JSON's: each fitted parameter of the
    // headline rectified fits, in the HTML at full precision and in the Markdown at four
    // digits.
    let html = std::fs::read_to_string(rep.join("report.html")).unwrap();
    let md = std::fs::read_to_string(rep.join("report.md")).unwrap();
    let fit: Value =
        serde_json::from_str(&std::fs::read_to_string(rep.join("fit.json")).unwrap()).unwrap();
    let groups = fit["rectified"]["groups"].as_array().unwrap();
    assert!(
        !groups.is_empty(),
        "rectified fits on the headline domain: {}",
        fit["skipped"]
    );
    // The HTML's numbers: `<span data-v="FULL">SHORT</span>`.
    let spans: Vec<(f64, &str)> = html
        .split("<span data-v=\"")
        .skip(1)
        .filter_map(|rest| {
            let (full, rest) = rest.split_once("\">")?;
            let (short, _) = rest.split_once("</span>")?;
            Some((full.parse().ok()?, short))
        })
        .collect();
    let mut checked = 0;
    for g in groups {
        for (name, v) in g["params"].as_object().unwrap() {
            let v = v.as_f64().unwrap();
            // serde_json's float parsing may land one ulp from the shortest round-trip
            // form the report wrote, hence the 1e-15 relative slack.
            let shown = spans
                .iter()
                .find(|(full, _)| (full - v).abs() <= 1e-15 * v.abs());
            let Some((full, short)) = shown else {
                panic!("{name} = {v} ({}) not in the HTML", key_num(v))
            };
            assert_eq!(*short, num(*full), "{name}: the short form of {full}");
            assert!(
                md.contains(&num(*full)),
                "{name} = {v}: {} not in the Markdown",
                num(v)
            );
            checked += 1;
        }
    }
    assert!(checked >= 4, "{checked} parameters checked");
    // The HTML is self-contained: figures inlined, nothing fetched.
    assert!(html.contains("data:image/png;base64,"));
    assert!(!html.contains("src=\"http"), "no network references");

    // Run again: every stage is complete, nothing is trained or rewritten.
    let before = std::fs::metadata(rep.join("report.html"))
        .unwrap()
        .modified()
        .unwrap();
    let again = run(d, &["run", "mini.toml", "--jobs", "2"]);
    assert!(again.status.success(), "{}", text(&again));
    let s = String::from_utf8_lossy(&again.stdout);
    assert!(s.contains("0 trained, 30 already done"), "{s}");
    assert!(text(&again).contains("is up to date"), "{}", text(&again));
    let after = std::fs::metadata(rep.join("report.html"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "the report was not rewritten");
}

#[test]
fn run_without_a_sweep_section_fails_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let c = corpora().join("natural/kjv.jsonl.gz");
    std::fs::write(
        d.join("nosweep.toml"),
        format!(
            "[data]\n[[data.sources]]\nname = \"kjv\"\nkind = \"natural\"\ndomain = \"kjv\"\n\
             path = \"{}\"\n",
            c.display()
        ),
    )
    .unwrap();
    let out = run(d, &["run", "nosweep.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no [sweep] section"), "{}", text(&out));
    assert!(!d.join("results").exists(), "nothing written");
}
