//! The batched decoder against candle-transformers' Llama models (the oracle), on tiny
//! random-weight models this test writes itself: GGUF (`quantized_llama`) and HF
//! safetensors as `synthscale export` writes it (`llama`). Sequences of different lengths
//! run together through our decoder and one at a time through the oracle.

use std::path::Path;

use anyhow::Result;
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, IndexOp, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use synthscale_synth::generate::{Generator, Request, Sampling};
use synthscale_synth::llama::{KvCache, Llama};
use synthscale_synth::tokenizer::ChatTokenizer;

const VOCAB: usize = 96;
const D: usize = 32;
const LAYERS: usize = 2;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const FF: usize = 48;
const HD: usize = D / HEADS;

fn randn(rng: &mut ChaCha8Rng, shape: (usize, usize), std: f32) -> Tensor {
    let data: Vec<f32> = (0..shape.0 * shape.1)
        .map(|_| (rng.random::<f32>() - 0.5) * 2.0 * std * 1.732)
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

/// Writes a tiny Llama GGUF (f32 tensors, separate output head) with a byte-level BPE
/// vocabulary of single characters plus `<|im_start|>`/`<|im_end|>` control tokens.
fn write_gguf(path: &Path, arch: &str) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut tensors: Vec<(String, Tensor)> = vec![
        ("token_embd.weight".into(), randn(&mut rng, (VOCAB, D), 0.5)),
        ("output.weight".into(), randn(&mut rng, (VOCAB, D), 0.5)),
        (
            "output_norm.weight".into(),
            (randn(&mut rng, (1, D), 0.1) + 1.0)?.flatten_all()?,
        ),
    ];
    for i in 0..LAYERS {
        let p = format!("blk.{i}");
        for (n, shape) in [
            ("attn_q", (HEADS * HD, D)),
            ("attn_k", (KV_HEADS * HD, D)),
            ("attn_v", (KV_HEADS * HD, D)),
            ("attn_output", (D, HEADS * HD)),
            ("ffn_gate", (FF, D)),
            ("ffn_up", (FF, D)),
            ("ffn_down", (D, FF)),
        ] {
            tensors.push((format!("{p}.{n}.weight"), randn(&mut rng, shape, 0.3)));
        }
        for n in ["attn_norm", "ffn_norm"] {
            tensors.push((
                format!("{p}.{n}.weight"),
                (randn(&mut rng, (1, D), 0.1) + 1.0)?.flatten_all()?,
            ));
        }
    }
    let q: Vec<(String, QTensor)> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), QTensor::quantize(t, GgmlDType::F32).unwrap()))
        .collect();
    // Vocabulary: 3 control tokens, then printable ASCII as byte-level symbols.
    // "Ġ" is the byte-level form of a space; "ab" and "abc" come from the two merges.
    let mut tokens: Vec<String> = [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "Ġ",
        "ab",
        "abc",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut types = vec![3i32, 3, 3, 1, 1, 1];
    for b in 33u8..=126 {
        if tokens.len() == VOCAB {
            break;
        }
        tokens.push((b as char).to_string());
        types.push(1);
    }
    let s = |v: &str| gguf_file::Value::String(v.into());
    let md: Vec<(&str, gguf_file::Value)> = vec![
        ("general.architecture", s(arch)),
        ("llama.attention.head_count", gguf_file::Value::U32(HEADS as u32)),
        ("llama.attention.head_count_kv", gguf_file::Value::U32(KV_HEADS as u32)),
        ("llama.block_count", gguf_file::Value::U32(LAYERS as u32)),
        ("llama.embedding_length", gguf_file::Value::U32(D as u32)),
        ("llama.feed_forward_length", gguf_file::Value::U32(FF as u32)),
        ("llama.rope.dimension_count", gguf_file::Value::U32(HD as u32)),
        ("llama.rope.freq_base", gguf_file::Value::F32(10_000.0)),
        ("llama.attention.layer_norm_rms_epsilon", gguf_file::Value::F32(1e-5)),
        ("llama.context_length", gguf_file::Value::U32(256)),
        ("tokenizer.ggml.model", s("gpt2")),
        ("tokenizer.ggml.pre", s("smollm")),
        (
            "tokenizer.ggml.tokens",
            gguf_file::Value::Array(tokens.iter().map(|t| s(t)).collect()),
        ),
        (
            "tokenizer.ggml.token_type",
            gguf_file::Value::Array(types.into_iter().map(gguf_file::Value::I32).collect()),
        ),
        (
            "tokenizer.ggml.merges",
            gguf_file::Value::Array(vec![s("a b"), s("ab c")]),
        ),
        ("tokenizer.ggml.eos_token_id", gguf_file::Value::U32(2)),
        ("tokenizer.chat_template", s("{% for m in messages %}<|im_start|>{{m['role']}}\n{{m['content']}}<|im_end|>\n{% endfor %}")),
    ];
    let md_refs: Vec<(&str, &gguf_file::Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = q.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut f = std::fs::File::create(path)?;
    gguf_file::write(&mut f, &md_refs, &t_refs)?;
    Ok(())
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

// Tolerance 1e-4 on logits of magnitude ~1-10: both sides compute in f32 with different
// operation orders (fused QKV, our attention loop vs candle's batched matmul and softmax).
const TOL: f32 = 1e-4;

#[test]
fn gguf_batched_logits_match_quantized_llama_per_sequence() -> Result<()> {
    gguf_against_quantized_llama(false)
}

/// The tensor-op path (what runs on a GPU under the `cuda` feature), here on the CPU, against
/// the same oracle; its first prompt outgrows the initial 64-row device cache.
#[test]
fn tensor_path_logits_match_quantized_llama_per_sequence() -> Result<()> {
    gguf_against_quantized_llama(true)
}

/// The tensor path with the bf16 key/value cache a GPU uses, here on the CPU: the same
/// oracle within bf16's tolerance, as a share of the largest logit (keys, values, queries
/// and probabilities rounded to 8 significant bits, relative 2⁻⁹ each; this random model's
/// attention is sharp, so score errors move the output by up to 3% over a 70-token prompt,
/// under 1% over short ones).
#[test]
fn tensor_path_with_a_bf16_cache_matches_within_bf16_tolerance() -> Result<()> {
    gguf_against_quantized_llama_kv(true, DType::BF16, 5e-2)
}

/// What an error is measured against: 1 (absolute) for f32, the largest |logit| for bf16.
fn scale_of(want: &Tensor, kv: DType) -> Result<f32> {
    Ok(if kv == DType::BF16 {
        want.abs()?.max(0)?.to_scalar::<f32>()?
    } else {
        1.0
    })
}

fn gguf_against_quantized_llama(tensor_path: bool) -> Result<()> {
    gguf_against_quantized_llama_kv(tensor_path, DType::F32, TOL)
}

fn gguf_against_quantized_llama_kv(tensor_path: bool, kv: DType, tol: f32) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("tiny.gguf");
    write_gguf(&path, "llama")?;
    let (mut ours, _) = Llama::from_gguf(&path)?;
    ours.set_kv_dtype(kv)?;
    let long: Vec<u32> = (0..70u32).map(|i| 3 + (i * 13) % 90).collect();
    let prompts: Vec<Vec<u32>> = if tensor_path {
        vec![long, vec![11, 3, 40], vec![90]]
    } else {
        vec![vec![5, 9, 17, 33, 4, 60, 7], vec![11, 3, 40], vec![90]]
    };
    let next: Vec<u32> = vec![12, 13, 14];
    // Slots out of order, one left idle, so the tensor path's slot arithmetic is exercised.
    let mut cache = ours.new_cache(4);
    let slots = [2usize, 0, 3];
    let refs: Vec<&[u32]> = prompts.iter().map(|p| p.as_slice()).collect();
    let fwd = |inputs: &[&[u32]], c: &mut synthscale_synth::llama::KvCache| {
        if tensor_path {
            ours.forward_tensors(inputs, &slots, c)
        } else {
            ours.forward(inputs, &slots, c)
        }
    };
    let prefill = fwd(&refs, &mut cache)?;
    let step_in: Vec<Vec<u32>> = next.iter().map(|&t| vec![t]).collect();
    let refs: Vec<&[u32]> = step_in.iter().map(|p| p.as_slice()).collect();
    let step = fwd(&refs, &mut cache)?;
    for (i, p) in prompts.iter().enumerate() {
        let mut f = std::fs::File::open(&path)?;
        let ct = gguf_file::Content::read(&mut f)?;
        let mut oracle = candle_transformers::models::quantized_llama::ModelWeights::from_gguf(
            ct,
            &mut f,
            &Device::Cpu,
        )?;
        let x = Tensor::new(p.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
        let want = oracle.forward(&x, 0)?.squeeze(0)?;
        let got = prefill.i(i)?;
        let d = max_abs_diff(&got, &want)?;
        let d = d / scale_of(&want, kv)?;
        assert!(d < tol, "sequence {i} prefill: max |Δlogit| = {d}");
        let x = Tensor::new(&[next[i]], &Device::Cpu)?.unsqueeze(0)?;
        let want = oracle.forward(&x, p.len())?.squeeze(0)?;
        let d = max_abs_diff(&step.i(i)?, &want)?;
        let d = d / scale_of(&want, kv)?;
        assert!(d < tol, "sequence {i} decode step: max |Δlogit| = {d}");
        if kv == DType::BF16 {
            assert!(d > 0.0, "the bf16 cache really rounded");
        }
    }
    Ok(())
}

#[test]
fn safetensors_export_matches_candle_llama() -> Result<()> {
    use synthscale_model::config::ModelConfig;
    let dir = tempfile::tempdir()?;
    let mut cfg = ModelConfig::from_shape(D, LAYERS, HEADS, VOCAB);
    cfg.n_kv_heads = KV_HEADS;
    cfg.tie_embeddings = false;
    cfg.init_std = 0.2;
    let model = synthscale_model::decoder::Decoder::new(&cfg, 3, &Device::Cpu)?;
    let out = dir.path().join("export");
    synthscale_model::export::export_hf(
        &model,
        &out,
        &synthscale_model::export::ExportFiles {
            eot: Some((0, "<eot>")),
            ..Default::default()
        },
    )?;
    let ours = Llama::from_hf_dir(&out)?;
    let prompts: Vec<Vec<u32>> = vec![vec![1, 2, 3, 4, 5, 6], vec![70, 71]];
    let mut cache = ours.new_cache(prompts.len());
    let refs: Vec<&[u32]> = prompts.iter().map(|p| p.as_slice()).collect();
    let prefill = ours.forward(&refs, &[0, 1], &mut cache)?;
    let hf: candle_transformers::models::llama::LlamaConfig =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json"))?)?;
    let ocfg = hf.into_config(false);
    let vb = unsafe {
        candle_nn::VarBuilder::from_mmaped_safetensors(
            &[out.join("model.safetensors")],
            DType::F32,
            &Device::Cpu,
        )?
    };
    let oracle = candle_transformers::models::llama::Llama::load(vb, &ocfg)?;
    for (i, p) in prompts.iter().enumerate() {
        let mut cache =
            candle_transformers::models::llama::Cache::new(true, DType::F32, &ocfg, &Device::Cpu)?;
        let x = Tensor::new(p.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
        let want = oracle.forward(&x, 0, &mut cache)?.squeeze(0)?;
        let d = max_abs_diff(&prefill.i(i)?, &want)?;
        assert!(d < TOL, "sequence {i}: max |Δlogit| = {d}");
    }
    Ok(())
}

#[test]
fn greedy_generation_is_the_same_at_batch_1_and_4() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("tiny.gguf");
    write_gguf(&path, "llama")?;
    // `cap` gives request r2 a cap of its own (3 new tokens).
    let run = |batch: usize, cap: bool| -> Result<Vec<(String, Vec<u32>)>> {
        let (model, ct) = Llama::from_gguf(&path)?;
        let tokenizer = ChatTokenizer::from_gguf(&ct, &path)?;
        let g = Generator {
            model,
            tokenizer,
            sampling: Sampling {
                temperature: 0.0,
                max_new_tokens: 12,
                ..Default::default()
            },
            batch_size: batch,
        };
        let reqs: Vec<Request> = (0..6u32)
            .map(|i| Request {
                id: format!("r{i}"),
                prompt: (0..(3 + i)).map(|k| 3 + (k * 7 + i) % 90).collect(),
                max_new_tokens: (cap && i == 2).then_some(3),
            })
            .collect();
        let mut out = Vec::new();
        g.generate(reqs, |c| {
            out.push((c.id, c.tokens));
            Ok(true)
        })?;
        out.sort();
        Ok(out)
    };
    let one = run(1, false)?;
    let four = run(4, false)?;
    assert_eq!(one.len(), 6);
    assert!(one.iter().any(|(_, t)| t.len() > 1));
    assert_eq!(one, four);
    // A request's own cap cuts only that request, to the first tokens it made uncapped.
    let capped = run(4, true)?;
    for (a, b) in one.iter().zip(&capped) {
        if a.0 == "r2" {
            assert!(
                a.1.len() > 3,
                "r2 must run past the cap uncapped: {:?}",
                a.1
            );
            assert_eq!(b.1, a.1[..3]);
        } else {
            assert_eq!(a, b);
        }
    }
    Ok(())
}

#[test]
fn tokenizer_from_gguf_metadata() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("tiny.gguf");
    write_gguf(&path, "llama")?;
    let (_, ct) = Llama::from_gguf(&path)?;
    let tok = ChatTokenizer::from_gguf(&ct, &path)?;
    // Control tokens keep their ids (1, 2); the merges `a b`, `ab c` make " abc" the two
    // tokens Ġ (3) and abc (5); digits split one by one (the smollm pre-tokenizer), so
    // "x=12;y" is six single characters; round trip is exact.
    assert_eq!(tok.encode("<|im_start|>")?, vec![1]);
    assert_eq!(tok.encode("<|im_end|>")?, vec![2]);
    assert!(tok.stop_ids.contains(&2));
    assert_eq!(tok.encode(" abc")?, vec![3, 5]);
    let text = "x=12;y";
    let ids = tok.encode(text)?;
    assert_eq!(ids.len(), 6);
    assert_eq!(tok.decode(&ids)?, text);
    Ok(())
}

#[test]
fn unsupported_architecture_and_missing_file_are_clear_errors() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("qwen.gguf");
    write_gguf(&path, "qwen2")?;
    let msg = Llama::from_gguf(&path).err().expect("refused").to_string();
    assert!(
        msg.contains("unsupported model") && msg.contains("qwen2"),
        "{msg}"
    );
    let msg = Llama::from_gguf(&dir.path().join("nope.gguf"))
        .err()
        .expect("refused")
        .to_string();
    assert!(msg.contains("file not found"), "{msg}");
    Ok(())
}

/// The tensor path's batch cache against the plain-Rust path (itself tested against
/// candle-transformers' quantized Llama above), pass by pass, over what the generator does:
/// decoding sequences batched together while another slot takes a new prompt, a slot freed
/// and reused by a shorter sequence (its old rows must not be read), slots in any order,
/// and a cache grown past its first capacity (64 positions) mid-run.
#[test]
fn tensor_path_batch_cache_matches_the_cpu_path_over_mixed_passes() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("tiny.gguf");
    write_gguf(&path, "llama")?;
    let (ours, _) = Llama::from_gguf(&path)?;
    // (the plain-Rust path's cache, the tensor path's)
    let mut c = (ours.new_cache(3), ours.new_cache(3));
    let prompt =
        |len: u32, salt: u32| -> Vec<u32> { (0..len).map(|i| 3 + (i * 11 + salt) % 90).collect() };
    type Caches = (KvCache, KvCache);
    let check = |c: &mut Caches, what: &str, inputs: &[Vec<u32>], slots: &[usize]| -> Result<()> {
        let refs: Vec<&[u32]> = inputs.iter().map(|v| v.as_slice()).collect();
        let want = ours.forward(&refs, slots, &mut c.0)?;
        let got = ours.forward_tensors(&refs, slots, &mut c.1)?;
        let d = max_abs_diff(&got, &want)?;
        assert!(d < TOL, "{what}: max |Δlogit| = {d}");
        for &s in slots {
            assert_eq!(c.1.len(s), c.0.len(s), "{what}: slot {s} length");
        }
        Ok(())
    };
    check(
        &mut c,
        "two prompts",
        &[prompt(40, 1), prompt(5, 2)],
        &[1, 0],
    )?;
    check(&mut c, "two decode steps", &[vec![7], vec![8]], &[0, 1])?;
    // A third sequence's prompt arrives while the other two decode (the 40-token one now
    // past 64 positions after the prompt: the cache grows).
    check(
        &mut c,
        "prompt among decodes",
        &[vec![9], prompt(30, 3), vec![10]],
        &[1, 2, 0],
    )?;
    for step in 0..3u32 {
        check(
            &mut c,
            "three decode",
            &[vec![11 + step], vec![20 + step], vec![30 + step]],
            &[2, 0, 1],
        )?;
    }
    // Slot 1 (the longest) finishes; a short sequence takes it over.
    c.0.clear(1);
    c.1.clear(1);
    check(
        &mut c,
        "reused slot's prompt",
        &[prompt(3, 4), vec![40]],
        &[1, 0],
    )?;
    check(
        &mut c,
        "reused slot decodes",
        &[vec![41], vec![42], vec![43]],
        &[1, 2, 0],
    )?;
    assert_eq!(c.1.len(1), 4);
    Ok(())
}
