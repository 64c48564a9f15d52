//! The mixture sampler on prepared data: exact shares, exact resume, repetition accounting.

mod common;

use std::path::Path;

use common::*;
use synthscale_data::config::SourceKind;
use synthscale_data::{
    prepare, DataDir, DataError, Mixture, MixtureSampler, PrepareOptions, SamplerConfig,
};

const M: &str = "manifest.toml";

/// Three sources of different sizes and kinds in one data directory.
fn three_sources(dir: &Path) -> DataDir {
    let a = dir.join("a.jsonl");
    let b = dir.join("b.jsonl");
    let c = dir.join("c.jsonl");
    write_jsonl(&a, 0, 120, 6);
    write_jsonl(&b, 1000, 40, 6);
    write_jsonl(&c, 2000, 15, 6);
    let cfg = config(
        vec![
            source("a", SourceKind::Natural, "web", &a),
            source("b", SourceKind::Rephrased, "web", &b),
            source("c", SourceKind::Textbook, "books", &c),
        ],
        32,
        0.25,
    );
    let out = dir.join("data");
    prepare(&cfg, Path::new(M), &out, &PrepareOptions::default()).unwrap();
    DataDir::open(&out).unwrap()
}

fn mix(w: &[(&str, f64)]) -> Mixture {
    Mixture {
        weights: w.iter().map(|(n, w)| (n.to_string(), *w)).collect(),
    }
}

#[test]
fn realized_shares_match_weights_within_one_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let data = three_sources(dir.path());
    for weights in [
        vec![("a", 1.0 / 3.0), ("b", 1.0 / 3.0), ("c", 1.0 / 3.0)],
        vec![("a", 2.0 / 3.0), ("b", 1.0 / 3.0)],
        vec![("a", 0.7), ("b", 0.2), ("c", 0.1)],
        vec![("a", 0.01), ("c", 0.99)],
    ] {
        for (batch, budget) in [(4usize, 10_000u64), (3, 7_777), (16, 100_000)] {
            let cfg = SamplerConfig {
                seq_len: 32,
                batch_size: batch,
                token_budget: budget,
                seed: 1,
            };
            let s = MixtureSampler::new(&data, &mix(&weights), cfg, Path::new(M)).unwrap();
            let n = s.steps() * batch as u64;
            assert_eq!(
                s.steps(),
                budget / (32 * batch as u64),
                "whole batches only"
            );
            // Count rows per source in the stream itself (the oracle is w·N).
            let mut counts = [0u64; 3];
            for b in s.stream(0) {
                assert_eq!(b.inputs.len(), batch * 32);
                for &src in &b.sources {
                    counts[src] += 1;
                }
            }
            for (name, w) in &weights {
                let i = data.meta().source_index(name).unwrap();
                let dev = counts[i] as f64 - w * n as f64;
                assert!(
                    dev.abs() < 1.0,
                    "{weights:?} {name}: {} vs {}",
                    counts[i],
                    w * n as f64
                );
            }
            let report = s.report(4.0);
            for u in &report.sources {
                let i = data.meta().source_index(&u.name).unwrap();
                assert_eq!(u.sequences, counts[i]);
                assert_eq!(u.tokens, counts[i] * 32);
            }
            assert_eq!(report.tokens, n * 32);
        }
    }
}

#[test]
fn targets_are_inputs_shifted_by_one_within_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let data = three_sources(dir.path());
    let cfg = SamplerConfig {
        seq_len: 32,
        batch_size: 5,
        token_budget: 32 * 5 * 20,
        seed: 9,
    };
    let s = MixtureSampler::new(&data, &mix(&[("a", 0.5), ("c", 0.5)]), cfg, Path::new(M)).unwrap();
    let shards: Vec<Vec<u32>> = (0..3).map(|i| data.train_shard(i).to_vec()).collect();
    for b in s.stream(0) {
        for r in 0..b.batch_size {
            let inp = &b.inputs[r * 32..(r + 1) * 32];
            let tgt = &b.targets[r * 32..(r + 1) * 32];
            assert_eq!(&inp[1..], &tgt[..31]);
            // The window is a contiguous, aligned slice of its source's training tokens.
            let tokens = &shards[b.sources[r]];
            let found = tokens.chunks(32).enumerate().any(|(w, _)| {
                w * 32 + 33 <= tokens.len()
                    && tokens[w * 32..w * 32 + 32] == *inp
                    && tokens[w * 32 + 32] == tgt[31]
            });
            assert!(
                found,
                "row {r} of step {} is not a window of its source",
                b.step
            );
        }
    }
}

#[test]
fn resuming_at_any_step_gives_the_uninterrupted_batches() {
    let dir = tempfile::tempdir().unwrap();
    let data = three_sources(dir.path());
    let cfg = SamplerConfig {
        seq_len: 32,
        batch_size: 3,
        token_budget: 60_000,
        seed: 42,
    };
    let m = mix(&[("a", 0.5), ("b", 0.3), ("c", 0.2)]);
    let s = MixtureSampler::new(&data, &m, cfg, Path::new(M)).unwrap();
    let all: Vec<_> = s.stream(0).collect();
    assert_eq!(all.len() as u64, s.steps());
    for k in [0u64, 1, 2, 17, 100, s.steps() - 1, s.steps()] {
        let resumed: Vec<_> = s.stream(k).collect();
        assert_eq!(resumed.as_slice(), &all[k as usize..], "resume at step {k}");
    }
    // A fresh sampler over a freshly opened directory gives the same stream.
    let data2 = DataDir::open(data.path()).unwrap();
    let s2 = MixtureSampler::new(&data2, &m, cfg, Path::new(M)).unwrap();
    assert!(s2.stream(0).eq(all.iter().cloned()));
    // Another seed gives another order of windows, with the same source schedule.
    let s3 =
        MixtureSampler::new(&data, &m, SamplerConfig { seed: 43, ..cfg }, Path::new(M)).unwrap();
    let other: Vec<_> = s3.stream(0).collect();
    assert_ne!(other, all);
    assert!(other.iter().zip(&all).all(|(x, y)| x.sources == y.sources));
}

#[test]
fn a_smaller_budgets_stream_is_a_prefix_of_a_larger_ones() {
    // Oracle: the stream of the largest budget itself. A budget ladder's trunk serves every
    // branch's steps before its cooldown, so the stream of budget D must be the first
    // D / batch steps of the stream of budget 2D, 4D, … (same seed, mixture and batch).
    let dir = tempfile::tempdir().unwrap();
    let data = three_sources(dir.path());
    let m = mix(&[("a", 0.5), ("b", 0.3), ("c", 0.2)]);
    let cfg = |budget| SamplerConfig {
        seq_len: 32,
        batch_size: 4,
        token_budget: budget,
        seed: 3,
    };
    let big = MixtureSampler::new(&data, &m, cfg(8 * 8192), Path::new(M)).unwrap();
    let big: Vec<_> = big.stream(0).collect();
    for budget in [8192u64, 2 * 8192, 4 * 8192, 5000] {
        let s = MixtureSampler::new(&data, &m, cfg(budget), Path::new(M)).unwrap();
        let small: Vec<_> = s.stream(0).collect();
        assert_eq!(small.len() as u64, budget / 128);
        assert_eq!(small[..], big[..small.len()], "budget {budget}");
        // And resuming mid-stream (a branch restarts at its trunk's step) agrees too.
        let k = small.len() as u64 / 2;
        assert_eq!(s.stream(k).next().unwrap(), big[k as usize]);
    }
}

#[test]
fn repeats_are_counted_and_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let data = three_sources(dir.path());
    let c = data.meta().source_index("c").unwrap();
    let windows = (data.train_shard(c).len() as u64 - 1) / 32;
    // Budget: 10 epochs of source c alone (oracle: epochs = sequences / windows).
    let cfg = SamplerConfig {
        seq_len: 32,
        batch_size: 1,
        token_budget: 10 * windows * 32,
        seed: 0,
    };
    let s = MixtureSampler::new(&data, &mix(&[("c", 1.0)]), cfg, Path::new(M)).unwrap();
    let r = s.report(4.0);
    let u = &r.sources[0];
    assert_eq!(u.sequences, 10 * windows);
    assert!((u.epochs - 10.0).abs() < 1e-12);
    assert_eq!(u.unique_tokens, windows * 32);
    assert_eq!(r.warnings.len(), 1);
    assert!(
        r.warnings[0].contains("\"c\"") && r.warnings[0].contains("10.00"),
        "{}",
        r.warnings[0]
    );
    // Each epoch visits every window exactly once.
    let rows: Vec<Vec<u32>> = s.stream(0).map(|b| b.inputs).collect();
    for epoch in rows.chunks(windows as usize) {
        let mut e = epoch.to_vec();
        e.sort();
        e.dedup();
        assert_eq!(e.len() as u64, windows);
    }
    assert!(s.report(20.0).warnings.is_empty());
}

#[test]
fn kind_shares_split_over_sources_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let data = three_sources(dir.path());
    let m = Mixture::from_kind_shares(
        data.meta(),
        &[
            (SourceKind::Natural, 2.0 / 3.0),
            (SourceKind::Rephrased, 1.0 / 3.0),
        ],
    )
    .unwrap();
    assert_eq!(m.weights.len(), 2);
    assert!((m.weights.iter().map(|w| w.1).sum::<f64>() - 1.0).abs() < 1e-12);
    let err = Mixture::from_kind_shares(
        data.meta(),
        &[(SourceKind::Textbook, 0.5), (SourceKind::Natural, 0.5)],
    );
    assert!(err.is_ok());
    let dir2 = tempfile::tempdir().unwrap();
    let a = dir2.path().join("a.jsonl");
    write_jsonl(&a, 0, 50, 5);
    let cfg = config(vec![source("a", SourceKind::Natural, "web", &a)], 16, 0.1);
    prepare(
        &cfg,
        Path::new(M),
        &dir2.path().join("d"),
        &PrepareOptions::default(),
    )
    .unwrap();
    let only_natural = DataDir::open(&dir2.path().join("d")).unwrap();
    let err =
        Mixture::from_kind_shares(only_natural.meta(), &[(SourceKind::Textbook, 1.0)]).unwrap_err();
    assert!(err.to_string().contains("no textbook source"), "{err}");
}

#[test]
fn bad_mixtures_and_budgets_are_refused_with_their_field() {
    let dir = tempfile::tempdir().unwrap();
    let data = three_sources(dir.path());
    let cfg = SamplerConfig {
        seq_len: 32,
        batch_size: 4,
        token_budget: 10_000,
        seed: 0,
    };
    let check = |m: Mixture, cfg: SamplerConfig, needles: &[&str]| {
        let err = MixtureSampler::new(&data, &m, cfg, Path::new(M)).unwrap_err();
        assert!(
            matches!(err, DataError::Field { .. }) && err.is_bad_input(),
            "{err}"
        );
        let msg = err.to_string();
        for n in needles {
            assert!(msg.contains(n), "{msg:?} lacks {n:?}");
        }
    };
    check(
        mix(&[("a", 0.5), ("b", 0.4)]),
        cfg,
        &["manifest.toml", "mixture", "sum to 0.9"],
    );
    check(mix(&[("a", 0.6), ("b", 0.6)]), cfg, &["sum to 1.2"]);
    check(mix(&[("a", 1.5), ("b", -0.5)]), cfg, &["mixture.b", "-0.5"]);
    check(mix(&[("zzz", 1.0)]), cfg, &["mixture.zzz", "a, b, c"]);
    check(
        mix(&[("a", 1.0)]),
        SamplerConfig {
            token_budget: 0,
            ..cfg
        },
        &["token_budget", "0 tokens"],
    );
    check(
        mix(&[("a", 1.0)]),
        SamplerConfig {
            token_budget: 127,
            ..cfg
        },
        &["token_budget", "4 × 32 = 128"],
    );
    check(
        mix(&[("a", 1.0)]),
        SamplerConfig {
            batch_size: 0,
            ..cfg
        },
        &["batch_size"],
    );
    check(
        mix(&[("a", 1.0)]),
        SamplerConfig {
            seq_len: 1_000_000,
            token_budget: 1 << 40,
            ..cfg
        },
        &["mixture.a", "fewer than one"],
    );
    check(mix(&[("a", f64::NAN), ("b", 1.0)]), cfg, &["mixture.a"]);
}
