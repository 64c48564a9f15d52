//! The decoder against its oracles: closed-form counts, gradients that reach every
//! parameter, and candle-transformers' Llama loading our export.

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::llama;
use synthscale_model::{export_hf, Decoder, Mode, ModelConfig};

fn small(tie: bool, kv: usize) -> ModelConfig {
    ModelConfig {
        vocab_size: 97,
        d_model: 32,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: kv,
        d_ff: 64,
        max_seq_len: 16,
        tie_embeddings: tie,
        ..ModelConfig::default()
    }
}

fn ids(b: usize, t: usize, vocab: u32, salt: u32) -> Tensor {
    let v: Vec<u32> = (0..(b * t) as u32)
        .map(|i| (i * 7919 + salt * 104_729) % vocab)
        .collect();
    Tensor::from_vec(v, (b, t), &Device::Cpu).unwrap()
}

#[test]
fn variable_sizes_match_the_closed_form_counts() {
    for cfg in [
        small(true, 4),
        small(false, 4),
        small(true, 2),
        small(false, 1),
    ] {
        let m = Decoder::new(&cfg, 0, &Device::Cpu).unwrap();
        assert_eq!(m.count_params(), cfg.params(), "{cfg:?}");
        let vocab = (cfg.vocab_size * cfg.d_model) as u64 * if cfg.tie_embeddings { 1 } else { 2 };
        assert_eq!(cfg.params() - cfg.non_embedding_params(), vocab);
    }
}

#[test]
fn every_parameter_receives_a_finite_nonzero_gradient() {
    for cfg in [small(true, 4), small(false, 2)] {
        let m = Decoder::new(&cfg, 1, &Device::Cpu).unwrap();
        let loss = m
            .loss(&ids(2, 16, 97, 1), &ids(2, 16, 97, 2), Mode::Train)
            .unwrap();
        let grads = loss.backward().unwrap();
        for (name, var) in m.params() {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{name} received no gradient"));
            let v: Vec<f32> = g.flatten_all().unwrap().to_vec1().unwrap();
            assert!(
                v.iter().all(|x| x.is_finite()),
                "{name}: non-finite gradient"
            );
            let l2: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!(l2 > 1e-8, "{name}: zero gradient");
        }
        // Evaluation mode builds no graph: backward finds no variable.
        let eval = m
            .loss(&ids(2, 16, 97, 1), &ids(2, 16, 97, 2), Mode::Eval)
            .unwrap();
        let g = eval.backward().unwrap();
        assert!(m
            .params()
            .iter()
            .all(|(_, v)| g.get(v.as_tensor()).is_none()));
        let a: f32 = loss.to_scalar().unwrap();
        let b: f32 = eval.to_scalar().unwrap();
        assert_eq!(a, b, "train and eval forward give the same loss");
    }
}

#[test]
fn initial_loss_is_near_uniform_over_the_vocabulary() {
    // Oracle: a freshly initialised model (std 0.02) predicts nearly uniformly, so its
    // cross-entropy is close to ln(V).
    let cfg = small(true, 4);
    let m = Decoder::new(&cfg, 2, &Device::Cpu).unwrap();
    let l: f32 = m
        .loss(&ids(4, 16, 97, 3), &ids(4, 16, 97, 4), Mode::Eval)
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!((l - (97f32).ln()).abs() < 0.05, "{l}");
}

#[test]
fn candle_transformers_llama_loads_the_export_and_gives_the_same_logits() {
    // Oracle: candle-transformers' Llama (a port of transformers' LlamaForCausalLM) reading
    // our HF-layout export; f32 on CPU, max |Δ| below 1e-4 at every position.
    for cfg in [small(false, 2), small(true, 4)] {
        let dir = tempfile::tempdir().unwrap();
        let m = Decoder::new(&cfg, 3, &Device::Cpu).unwrap();
        // Move away from the near-uniform start so the comparison means something.
        let scaled: std::collections::HashMap<_, _> = m
            .tensors()
            .into_iter()
            .map(|(k, v)| {
                let v = if k.contains("norm") {
                    v
                } else {
                    (v * 10.0).unwrap()
                };
                (k, v)
            })
            .collect();
        let m = Decoder::from_tensors(&cfg, scaled, std::path::Path::new("x")).unwrap();
        let out = dir.path().join("hf");
        export_hf(
            &m,
            &out,
            &synthscale_model::export::ExportFiles {
                eot: Some((0, "<eot>")),
                ..Default::default()
            },
        )
        .unwrap();
        let config: llama::LlamaConfig =
            serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
        let config = config.into_config(false);
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(
                &[out.join("model.safetensors")],
                DType::F32,
                &Device::Cpu,
            )
        }
        .unwrap();
        let theirs = llama::Llama::load(vb, &config).unwrap();
        let x = ids(1, 16, 97, 5);
        let ours = m.forward(&x, Mode::Eval).unwrap();
        let spread: f32 = ours.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(spread > 0.5, "logits too flat to compare: {spread}");
        for t in [1usize, 2, 7, 16] {
            let mut cache = llama::Cache::new(false, DType::F32, &config, &Device::Cpu).unwrap();
            let theirs_t = theirs
                .forward(&x.narrow(1, 0, t).unwrap(), 0, &mut cache)
                .unwrap();
            let ours_t = ours.i((.., t - 1, ..)).unwrap();
            let diff: f32 = (theirs_t - ours_t)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(diff < 1e-4, "position {t}: max |Δ| = {diff}");
        }
    }
}

#[test]
fn weights_that_do_not_fit_the_config_are_refused() {
    let cfg = small(true, 4);
    let m = Decoder::new(&cfg, 0, &Device::Cpu).unwrap();
    let mut t = m.tensors();
    t.remove("model.norm.weight");
    let err = Decoder::from_tensors(&cfg, t, std::path::Path::new("ck.safetensors")).unwrap_err();
    assert!(err.to_string().contains("model.norm.weight"), "{err}");
    let mut t = m.tensors();
    t.insert(
        "lm_head.weight".into(),
        Tensor::zeros((97, 32), DType::F32, &Device::Cpu).unwrap(),
    );
    let err = Decoder::from_tensors(&cfg, t, std::path::Path::new("ck.safetensors")).unwrap_err();
    assert!(err.to_string().contains("lm_head.weight"), "{err}");
}
