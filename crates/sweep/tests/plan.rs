//! Grid expansion, stable ids, the run rule and manifest errors, against a small prepared
//! data directory.

use std::path::{Path, PathBuf};

use synthscale_data::{prepare, DataConfig, PrepareOptions};
use synthscale_sweep::{Sweep, SweepConfig, SweepError};

/// A data directory of 200 short documents over two kinds (natural, rephrased), GPT-free:
/// a 300-token byte-level BPE, sequences of 32 tokens.
fn data_dir(dir: &Path) -> PathBuf {
    for (name, seed) in [("nat", 1u64), ("reph", 2)] {
        let mut x = seed;
        let words = [
            "alpha", "beta", "gamma", "delta", "river", "stone", "light", "cloud",
        ];
        let mut lines = String::new();
        for d in 0..200 {
            let mut t = String::new();
            for _ in 0..60 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                t.push_str(words[(x >> 40) as usize % words.len()]);
                t.push(' ');
            }
            lines.push_str(&format!("{{\"id\": {d}, \"text\": \"{t}\"}}\n"));
        }
        std::fs::write(dir.join(format!("{name}.jsonl")), lines).unwrap();
    }
    let text = "tokenizer = { kind = \"bpe\", vocab_size = 300 }\nvalidation_fraction = 0.1\n\
                seq_len = 32\n[[sources]]\nname = \"nat\"\nkind = \"natural\"\ndomain = \"a\"\n\
                path = \"nat.jsonl\"\n[[sources]]\nname = \"reph\"\nkind = \"rephrased\"\n\
                domain = \"a\"\npath = \"reph.jsonl\"\n";
    let manifest = dir.join("data.toml");
    let mut cfg = DataConfig::from_toml(text, &manifest).unwrap();
    cfg.resolve_paths(dir);
    let out = dir.join("data");
    prepare(
        &cfg,
        &manifest,
        &out,
        &PrepareOptions {
            force: false,
            on_event: None,
        },
    )
    .unwrap();
    out
}

fn sweep_cfg(text: &str) -> Result<SweepConfig, toml::de::Error> {
    toml::from_str(text)
}

const GRID: &str = r#"
sizes = [{ preset = "0.1M" }, { params = 60_000 }, { name = "tiny", d_model = 32, n_layers = 2, n_heads = 2 }]
budgets = [{ tokens = 8192 }, { tokens_per_param = 0.5 }]
seeds = [0, 1]
[mixtures]
natural = { natural = 1.0 }
third = { natural = 0.67, rephrased = 0.33 }
"#;

fn plan(dir: &Path, data: &Path, text: &str) -> Result<Sweep, SweepError> {
    Sweep::plan(
        &dir.join("m.toml"),
        data,
        &sweep_cfg(text).unwrap(),
        None,
        Some(&dir.join("out")),
    )
}

#[test]
fn the_grid_expands_with_stable_ids_and_one_change_changes_one_id() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let a = plan(dir.path(), &data, GRID).unwrap();
    // 3 sizes × 2 budgets × 2 mixtures × 2 seeds.
    assert_eq!(a.runs.len(), 24);
    let ids: std::collections::BTreeSet<_> = a.runs.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 24, "ids are unique");
    for r in &a.runs {
        let readable = format!("{}_{}_{}_s{}-", r.size, r.budget, r.mixture, r.seed);
        assert!(r.id.starts_with(&readable), "{} vs {readable}", r.id);
        assert_eq!(r.id.len(), readable.len() + 8);
    }
    // The same manifest gives the same ids, in the same order.
    let b = plan(dir.path(), &data, GRID).unwrap();
    assert_eq!(
        a.runs.iter().map(|r| &r.id).collect::<Vec<_>>(),
        b.runs.iter().map(|r| &r.id).collect::<Vec<_>>()
    );
    // Changing one mixture's shares changes exactly that mixture's ids (12 runs), no other.
    let changed = GRID.replace(
        "natural = 0.67, rephrased = 0.33",
        "natural = 0.5, rephrased = 0.5",
    );
    let c = plan(dir.path(), &data, &changed).unwrap();
    let differ = a
        .runs
        .iter()
        .zip(&c.runs)
        .filter(|(x, y)| x.id != y.id)
        .count();
    assert_eq!(differ, 12);
    assert!(a
        .runs
        .iter()
        .zip(&c.runs)
        .filter(|(x, y)| x.id != y.id)
        .all(|(x, _)| x.mixture == "third"));
    // The size rule: 60k non-embedding parameters → the nearest shape (crates/model).
    let rule = a.runs.iter().find(|r| r.size == "60k").unwrap();
    let expect =
        synthscale_model::ModelConfig::for_params(60_000, rule.resolved.model.vocab_size).unwrap();
    assert_eq!(rule.non_embedding_params, expect.non_embedding_params());
    // tokens_per_param: 0.5 · N_non-emb, rounded down to whole steps.
    let tpp = a
        .runs
        .iter()
        .find(|r| r.size == "0.1M" && r.budget == "0.5tpp")
        .unwrap();
    let want = (0.5 * tpp.non_embedding_params as f64).round() as u64;
    let batch = tpp.resolved.optim.batch_tokens;
    assert_eq!(tpp.tokens, want / batch * batch);
}

#[test]
fn the_run_rule_follows_deepseeks_power_laws() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let s = plan(dir.path(), &data, GRID).unwrap();
    let r = s
        .runs
        .iter()
        .find(|r| r.size == "0.1M" && r.budget == "8192")
        .unwrap();
    let m = &r.resolved.model;
    // Oracle: DeepSeek LLM (2024) eq. 1, lr = 0.3118·C^−0.125 and B = 0.2920·C^0.3271, with
    // C = M·D and M the non-embedding FLOPs per token (our count less the output head).
    let m_tok = (m.flops_per_token(32) - 6 * m.vocab_size as u64 * m.d_model as u64) as f64;
    let c = m_tok * 8192.0;
    assert!((r.resolved.optim.lr - 0.3118 * c.powf(-0.125)).abs() < 1e-12);
    // B in sequences of 32, the nearest power of two, halved until ≥ 20 steps fit in D.
    let raw = 0.2920 * c.powf(0.3271) / 32.0;
    let mut seqs = 1u64 << (raw.log2().round() as u32);
    while seqs > 1 && seqs * 32 * 20 > 8192 {
        seqs /= 2;
    }
    assert_eq!(r.resolved.optim.batch_tokens, seqs * 32);
    assert!(r.steps() >= 20);
    // Warm-up 5% of steps (at least 1), evaluations every steps/4, checkpoints every steps/10.
    let steps = r.steps();
    assert_eq!(
        r.resolved.optim.warmup_steps,
        ((0.05 * steps as f64).round() as u64).max(1)
    );
    assert_eq!(r.resolved.eval.interval, steps / 4);
    assert_eq!(r.resolved.checkpoint.interval, (steps / 10).max(1));
    // A fixed lr and batch override the laws.
    let fixed = plan(
        dir.path(),
        &data,
        &format!("{GRID}\n[run_rule]\nlr = 1e-3\nbatch_tokens = 128\nmicro_batch_size = 2\n"),
    )
    .unwrap();
    for r in &fixed.runs {
        assert_eq!(r.resolved.optim.lr, 1e-3);
        assert_eq!(r.resolved.optim.batch_tokens, 128);
        assert_eq!(r.resolved.accumulation(), 2);
    }
}

fn field_error(dir: &Path, data: &Path, text: &str) -> (String, String) {
    match plan(dir, data, text) {
        Err(SweepError::Field { field, message, .. }) => (field, message),
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn manifest_errors_name_the_field_and_bound() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    // Unknown fields are refused by the schema.
    let e = sweep_cfg("sizes = [{ preset = \"0.1M\", widht = 3 }]").unwrap_err();
    assert!(e.to_string().contains("unknown field `widht`"), "{e}");
    assert!(sweep_cfg("sizez = []")
        .unwrap_err()
        .to_string()
        .contains("unknown field"));
    // Empty grids.
    let (f, _) = field_error(
        dir.path(),
        &data,
        &GRID.replace("seeds = [0, 1]", "seeds = []"),
    );
    assert_eq!(f, "sweep.seeds");
    let (f, m) = field_error(
        dir.path(),
        &data,
        &GRID.replace(
            "budgets = [{ tokens = 8192 }, { tokens_per_param = 0.5 }]",
            "budgets = []",
        ),
    );
    assert_eq!(f, "sweep.budgets");
    assert!(m.contains("no budgets"));
    // Shares not summing to 1.
    let (f, m) = field_error(
        dir.path(),
        &data,
        &GRID.replace("natural = 0.67", "natural = 0.6"),
    );
    assert_eq!(f, "sweep.mixtures.third");
    assert!(m.contains("sum to 0.9299"), "{m}");
    // A name outside the safe alphabet never reaches a file name or a shell.
    let (f, _) = field_error(
        dir.path(),
        &data,
        &GRID.replace("name = \"tiny\"", "name = \"a;rm\""),
    );
    assert_eq!(f, "sweep.sizes[2].name");
    // A size whose estimated memory exceeds the device.
    let (f, m) = field_error(
        dir.path(),
        &data,
        &format!("device_memory_gib = 0.001\n{GRID}"),
    );
    assert_eq!(f, "sweep.sizes[0]");
    assert!(m.contains("GiB"), "{m}");
    // A mixture asking for a kind the data lacks fails at plan time, not at run time.
    match plan(
        dir.path(),
        &data,
        &GRID.replace("rephrased = 0.33", "textbook = 0.33"),
    ) {
        Err(e) => assert!(e.to_string().contains("textbook"), "{e}"),
        Ok(_) => panic!("a missing kind must be an error"),
    }
}

#[test]
fn an_automatic_micro_batch_is_the_largest_the_memory_model_fits() {
    use synthscale_sweep::plan::{memory_model, Graph};
    // Oracle: the memory model itself, evaluated here for every divisor of the batch: the
    // chosen micro-batch fits 90% of the declared memory and the next larger divisor does
    // not. 0.05 GiB on a CUDA sweep (the composed bf16 graph) leaves room for some but not
    // all of a 64-sequence batch of the 0.1M preset.
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let text = "device = \"cuda\"\ndevice_memory_gib = 0.05\n\
                sizes = [{ preset = \"0.1M\" }]\nbudgets = [{ tokens = 131072 }]\n\
                seeds = [0]\n[mixtures]\nnatural = { natural = 1.0 }\n\
                [run_rule]\nbatch_tokens = 2048\nmicro_batch_size = \"auto\"\n";
    let s = plan(dir.path(), &data, text).unwrap();
    let run = &s.runs[0];
    let (seqs, seq) = (64usize, 32usize);
    assert_eq!(run.resolved.batch_sequences(), seqs);
    let micro = run.resolved.optim.micro_batch_size;
    let budget = 0.9 * 0.05 * (1u64 << 30) as f64;
    let need = |m: usize| {
        memory_model(
            &run.resolved.model,
            seq,
            m,
            seqs / m,
            Graph::Composed,
            synthscale_train::config::DeviceSpec::Cuda,
        )
        .total
    };
    assert!(micro > 1 && micro < seqs, "{micro}");
    assert!(need(micro) <= budget, "{} > {budget}", need(micro));
    let next = (micro + 1..=seqs).find(|m| seqs % m == 0).unwrap();
    assert!(need(next) > budget, "{next} would fit too");
    assert_eq!(run.memory_bytes, need(micro));

    // A micro-batch that is neither a number nor "auto" names the field.
    let bad = text.replace("\"auto\"", "\"big\"");
    let err = sweep_cfg(&bad).unwrap_err().to_string();
    assert!(
        err.contains("micro_batch_size") && err.contains("auto"),
        "{err}"
    );
}

/// Doubling budgets 4k … 64k tokens as a ladder, at a fixed batch of 8 sequences: 16, 32,
/// 64, 128 and 256 steps.
const LADDER: &str = r#"
sizes = [{ name = "tiny", d_model = 32, n_layers = 2, n_heads = 2 }]
budgets = [{ tokens = 4096 }, { tokens = 8192 }, { tokens = 16384 }, { tokens = 32768 }, { tokens = 65536 }]
seeds = [0, 1]
[mixtures]
natural = { natural = 1.0 }
[run_rule]
ladder = true
batch_tokens = 256
micro_batch_size = 4
"#;

#[test]
fn a_ladder_is_one_trunk_and_a_branch_per_budget_at_the_largest_budgets_settings() {
    use synthscale_sweep::LadderRole;
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let s = plan(dir.path(), &data, LADDER).unwrap();
    // Per seed: one trunk, then five branches.
    assert_eq!(s.runs.len(), 12);
    let trunk = &s.runs[0];
    assert!(
        trunk.id.starts_with("tiny_trunk_natural_s0-"),
        "{}",
        trunk.id
    );
    let branches = &s.runs[1..6];
    // Oracle: the cooldown starts N = S − round(0.2·S) of Hägele et al.'s WSD with the
    // default decay_fraction 0.2, for S = 16 … 256.
    let starts = [13u64, 26, 51, 102, 205];
    assert_eq!(trunk.steps(), 205);
    assert_eq!(trunk.resolved.checkpoint.keep_steps, starts.to_vec());
    assert_eq!(
        trunk.resolved.optim.schedule,
        synthscale_train::config::Schedule::Constant
    );
    for (b, (&n, steps)) in branches
        .iter()
        .zip(starts.iter().zip([16u64, 32, 64, 128, 256]))
    {
        assert_eq!(b.steps(), steps);
        assert_eq!(b.resolved.decay_start(), n);
        assert_eq!(
            b.ladder,
            Some(LadderRole::Branch {
                trunk: trunk.id.clone(),
                step: n
            })
        );
        let branch = b.resolved.branch.as_ref().unwrap();
        assert_eq!(branch.trunk, s.run_dir(&trunk.id));
        // One batch, peak lr, warm-up (5 % of the largest budget's 256 steps) and
        // evaluation interval (the smallest budget's 16 steps / 4) for the whole ladder.
        for (x, y) in [
            (
                b.resolved.optim.batch_tokens,
                trunk.resolved.optim.batch_tokens,
            ),
            (b.resolved.warmup_steps(), 13),
            (trunk.resolved.warmup_steps(), 13),
            (b.resolved.eval.interval, 4),
            (trunk.resolved.eval.interval, 4),
        ] {
            assert_eq!(x, y, "{}", b.id);
        }
        assert_eq!(b.resolved.optim.lr, trunk.resolved.optim.lr);
    }
    // The cost: trunk 205 steps + cooldowns 3 + 6 + 13 + 26 + 51 = 304 steps against the
    // largest budget's 256 (1.19×, REFERENCE.md §8: ≈ 1 + 0.2·0.97), separate runs
    // 16 + … + 256 = 496 (1.94×).
    let costs = synthscale_sweep::ladder::costs(&s.runs);
    assert_eq!(costs.len(), 2);
    let c = &costs[0];
    assert!((c.flops / c.largest_flops - 304.0 / 256.0).abs() < 1e-9);
    assert!(c.flops / c.largest_flops <= 1.25);
    assert!((c.separate_flops / c.largest_flops - 496.0 / 256.0).abs() < 1e-9);
    // Stable: the same manifest, the same ids; a change of the cooldown changes every id
    // of the ladder (the branches name their trunk by id).
    let again = plan(dir.path(), &data, LADDER).unwrap();
    let ids = |s: &Sweep| s.runs.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&s), ids(&again));
    let sqrt = plan(
        dir.path(),
        &data,
        &LADDER.replace("ladder = true", "ladder = true\ndecay_shape = \"1-sqrt\""),
    )
    .unwrap();
    assert_eq!(sqrt.runs[0].id, s.runs[0].id, "the trunk has no cooldown");
    for (a, b) in ids(&s).iter().zip(ids(&sqrt)).skip(1).take(5) {
        assert_ne!(a, &b);
    }
}

#[test]
fn bad_ladders_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    for (text, want_field, want) in [
        (
            LADDER.replace("ladder = true", "ladder = true\ndecay_fraction = 1.0"),
            "sweep.run_rule.decay_fraction",
            "outside (0, 1)",
        ),
        (
            LADDER.replace("ladder = true", "ladder = true\ndecay_fraction = 0.0"),
            "sweep.run_rule.decay_fraction",
            "outside (0, 1)",
        ),
        (
            LADDER.replace(
                "budgets = [{ tokens = 4096 }, { tokens = 8192 }, { tokens = 16384 }, { tokens = 32768 }, { tokens = 65536 }]",
                "budgets = [{ tokens = 8192 }]",
            ),
            "sweep.budgets",
            "at least two budgets",
        ),
        (
            // 2048 tokens: 8 steps, cooling down from step 6, inside the 13 warm-up steps.
            LADDER.replace("budgets = [", "budgets = [{ tokens = 2048 }, "),
            "sweep.budgets[0]",
            "before the warm-up ends at step 13",
        ),
    ] {
        let (field, msg) = field_error(dir.path(), &data, &text);
        assert_eq!(field, want_field, "{msg}");
        assert!(msg.contains(want), "{msg}");
    }
}

/// A fake `synthscale export` of `model` in `dir`: its config.json, and a weights file
/// that planning does not read.
fn fake_export(dir: &Path, model: &synthscale_model::ModelConfig) {
    std::fs::create_dir_all(dir).unwrap();
    let config = synthscale_model::export::hf_config(model, None);
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    std::fs::write(dir.join("model.safetensors"), b"").unwrap();
}

#[test]
fn init_from_starts_a_ladders_trunk_and_names_no_absolute_path_in_ids() {
    use synthscale_sweep::LadderRole;
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let base = plan(dir.path(), &data, LADDER).unwrap();
    let vocab = base.runs[0].resolved.model.vocab_size;
    let mut model = synthscale_model::ModelConfig::from_shape(32, 2, 2, vocab);
    model.max_seq_len = 32;
    let text = LADDER.replace("n_heads = 2 }", "n_heads = 2, init_from = \"base\" }");
    // The same manifest in two folders, each beside its own base export.
    let mut plans = Vec::new();
    for sub in ["x", "y"] {
        let d = dir.path().join(sub);
        fake_export(&d.join("base"), &model);
        let mut cfg = sweep_cfg(&text).unwrap();
        cfg.resolve_paths(&d);
        plans
            .push(Sweep::plan(&d.join("m.toml"), &data, &cfg, None, Some(&d.join("out"))).unwrap());
    }
    let s = &plans[0];
    assert_eq!(s.init_sources.len(), 1);
    assert_eq!(s.init_sources[0].0, "tiny");
    for r in &s.runs {
        match &r.ladder {
            // Oracle: the manifest — the trunk starts from the size's init_from, absolute.
            Some(LadderRole::Trunk { .. }) => {
                assert_eq!(
                    r.run.init_from.as_deref(),
                    Some(&*dir.path().join("x/base"))
                );
                assert_eq!(r.resolved.init_from, r.run.init_from);
            }
            _ => assert_eq!(r.run.init_from, None, "{}", r.id),
        }
    }
    // Ids hash the path relative to the manifest: the same in both folders, and every run
    // differs from the ladder without init_from (a branch names its trunk's id).
    let ids = |s: &Sweep| s.runs.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&plans[0]), ids(&plans[1]));
    assert!(ids(&base).iter().zip(ids(s)).all(|(a, b)| *a != b));

    // A base of another shape is refused naming the size's field and the export's.
    let wide = dir.path().join("wide");
    let mut w = model.clone();
    w.d_ff = 128;
    fake_export(&wide.join("base"), &w);
    let mut cfg = sweep_cfg(&text).unwrap();
    cfg.resolve_paths(&wide);
    let e = Sweep::plan(&wide.join("m.toml"), &data, &cfg, None, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`sweep.sizes[0].init_from`")
            && e.contains("`intermediate_size`")
            && e.contains("128 there"),
        "{e}"
    );
    // A missing one is refused before the data is looked at.
    let mut cfg = sweep_cfg(&text).unwrap();
    cfg.resolve_paths(&dir.path().join("nowhere"));
    let e = cfg.validate(Path::new("m.toml")).unwrap_err().to_string();
    assert!(
        e.contains("`sweep.sizes[0].init_from`") && e.contains("does not exist"),
        "{e}"
    );
}

/// The local executor on a CUDA sweep, with a stand-in for `synthscale train` that records
/// the GPUs it was given (`CUDA_VISIBLE_DEVICES`) and when it ran. Oracle: the memory
/// model's packing, k = ⌊GPU memory / (run's estimate + the CUDA context allowance)⌋ — with
/// 2.5 GiB GPUs and runs of a few MiB, 2 a GPU — so at no time does a GPU hold more than k
/// one-rank runs, at some time both GPUs hold k, and the 2-rank run gets both GPUs alone.
#[test]
fn the_local_executor_packs_small_runs_on_a_gpu_and_gives_ranks_whole_gpus() {
    use std::collections::HashMap;
    use synthscale_sweep::gpu_pool::CUDA_PROCESS_OVERHEAD_BYTES;
    use synthscale_sweep::{launch_local, LocalOptions};
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let text = "device = \"cuda\"\ndevice_memory_gib = 2.5\n\
                sizes = [{ name = \"tiny\", d_model = 32, n_layers = 2, n_heads = 2 }, \
                { name = \"wide\", d_model = 64, n_layers = 2, n_heads = 2, ranks = 2 }]\n\
                budgets = [{ tokens = 4096 }]\nseeds = [0, 1, 2, 3, 4, 5]\n\
                [mixtures]\nnatural = { natural = 1.0 }\n[run_rule]\nbatch_tokens = 256\nmicro_batch_size = 4\n";
    let s = plan(dir.path(), &data, text).unwrap();
    let tiny = s.runs.iter().find(|r| r.size == "tiny").unwrap();
    let k = (2.5 * (1u64 << 30) as f64 / (tiny.memory_bytes + CUDA_PROCESS_OVERHEAD_BYTES)).floor()
        as u32;
    assert_eq!((k, s.runs_per_gpu(tiny)), (2, 2));
    let wide = s.runs.iter().find(|r| r.size == "wide").unwrap();
    assert_eq!(s.runs_per_gpu(wide), 1);

    let log = dir.path().join("gpus.log");
    let fake = dir.path().join("fake-train.sh");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/bash\nwhile [ $# -gt 0 ]; do [ \"$1\" = --run-dir ] && d=\"$2\"; shift; done\n\
             echo \"$(date +%s.%N) start $CUDA_VISIBLE_DEVICES\" >> {log}\nsleep 0.6\n\
             echo \"$(date +%s.%N) end $CUDA_VISIBLE_DEVICES\" >> {log}\n\
             mkdir -p \"$d\" && touch \"$d/DONE\"\n",
            log = log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let opts = LocalOptions {
        jobs: 0,
        gpus: Some(vec!["0".into(), "1".into()]),
        ..LocalOptions::new(fake)
    };
    let out = launch_local(&s, &opts).unwrap();
    assert_eq!(out.len(), 12);
    assert!(out
        .iter()
        .all(|(_, o)| matches!(o, synthscale_sweep::RunOutcome::Done { .. })));

    // Replay the log: runs on each GPU over time.
    let text = std::fs::read_to_string(&log).unwrap();
    let mut events: Vec<(f64, bool, String)> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].parse().unwrap(), f[1] == "start", f[2].to_string())
        })
        .collect();
    events.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then(a.1.cmp(&b.1)));
    let mut on: HashMap<String, i32> = HashMap::new();
    let (mut most, mut ddp) = (HashMap::<String, i32>::new(), 0);
    for (_, start, gpus) in &events {
        for g in gpus.split(',') {
            let n = on.entry(g.to_string()).or_default();
            *n += if *start { 1 } else { -1 };
            let m = most.entry(g.to_string()).or_default();
            *m = (*m).max(*n);
        }
        if *start && gpus == "0,1" {
            ddp += 1;
            // Alone on both GPUs.
            assert_eq!((on["0"], on["1"]), (1, 1), "{text}");
        }
    }
    assert_eq!(ddp, 6, "{text}");
    assert_eq!((most["0"], most["1"]), (2, 2), "{text}");
}
