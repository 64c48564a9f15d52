//! Decoding throughput: our batched f32 decoder at a given batch size, and the peer,
//! candle-transformers' quantized Llama (QMatMul on the GGUF's own blocks) at batch 1.

use std::path::Path;
use std::time::Instant;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};

use crate::error::{Result, SynthError};
use crate::llama::Llama;

/// Prompt ids that are ordinary tokens (skips the first 256 ids, where control tokens sit).
fn prompt(len: usize, salt: usize, vocab: usize) -> Vec<u32> {
    (0..len)
        .map(|i| (256 + (i * 7919 + salt * 104_729) % (vocab - 256)) as u32)
        .collect()
}

fn argmax_rows(logits: &Tensor) -> Result<Vec<u32>> {
    Ok(logits.argmax(candle_core::D::Minus1)?.to_vec1::<u32>()?)
}

/// Generated tokens per second of `steps` greedy decode steps of `batch` sequences after a
/// prompt of `prompt_len` tokens each (the prompt's prefill is not timed).
pub fn decode_rate(model: &Llama, batch: usize, prompt_len: usize, steps: usize) -> Result<f64> {
    let vocab = model.config().vocab_size.max(512);
    let prompts: Vec<Vec<u32>> = (0..batch).map(|b| prompt(prompt_len, b, vocab)).collect();
    let mut cache = model.new_cache(batch);
    let slots: Vec<usize> = (0..batch).collect();
    let inputs: Vec<&[u32]> = prompts.iter().map(|p| p.as_slice()).collect();
    let mut next = argmax_rows(&model.forward(&inputs, &slots, &mut cache)?)?;
    let t = Instant::now();
    for _ in 0..steps {
        let step: Vec<[u32; 1]> = next.iter().map(|&x| [x]).collect();
        let inputs: Vec<&[u32]> = step.iter().map(|s| s.as_slice()).collect();
        next = argmax_rows(&model.forward(&inputs, &slots, &mut cache)?)?;
    }
    Ok((batch * steps) as f64 / t.elapsed().as_secs_f64())
}

/// The same measurement at batch 1 through candle-transformers' `quantized_llama`.
pub fn quantized_peer_rate(path: &Path, prompt_len: usize, steps: usize) -> Result<f64> {
    let mut f = std::fs::File::open(path).map_err(|e| SynthError::read(path, e))?;
    let ct = gguf_file::Content::read(&mut f).map_err(|e| SynthError::Weights {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut m = candle_transformers::models::quantized_llama::ModelWeights::from_gguf(
        ct,
        &mut f,
        &Device::Cpu,
    )?;
    let p = prompt(prompt_len, 0, 49_152);
    let x = Tensor::new(p.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
    let mut next = argmax_rows(&m.forward(&x, 0)?)?[0];
    let t = Instant::now();
    for i in 0..steps {
        let x = Tensor::new(&[next], &Device::Cpu)?.unsqueeze(0)?;
        next = argmax_rows(&m.forward(&x, prompt_len + i)?)?[0];
    }
    Ok(steps as f64 / t.elapsed().as_secs_f64())
}

/// The bench's prompts: `n` rephrasing requests over one ~100-token passage, each opened
/// by its own number so that no two share a prompt (a server's prefix cache still shares
/// the system text, as it would in a real run).
pub fn bench_prompts(n: usize) -> Vec<(String, String, String)> {
    const PASSAGE: &str = "The committee met on a cold morning to weigh the proposal for a new \
        bridge across the river. Engineers described the soft clay of the eastern bank, the \
        cost of deeper piles, and the traffic that the old ferry could no longer carry. \
        Farmers asked whether tolls would fall on their carts; merchants asked how soon the \
        work could begin. After a long debate the members agreed to fund a survey first, \
        and to meet again when its findings were known.";
    (0..n)
        .map(|i| {
            (
                format!("bench/{i}"),
                "You rewrite passages in clear, plain English.".to_string(),
                format!("Passage {i}:\n{PASSAGE}\n\nRewrite the passage above in your own words."),
            )
        })
        .collect()
}

/// Generated tokens per second through a server with `concurrency` requests in flight,
/// over `requests` prompts of up to `max_tokens` new tokens each (prefill included, as
/// in a real run), asking the server to ignore end-of-sequence so every answer is full.
pub fn server_rate(
    client: &crate::server::ServerClient,
    requests: usize,
    concurrency: usize,
    max_tokens: usize,
) -> Result<(f64, u64)> {
    use crate::server::{Answer, Prompt};
    let texts = bench_prompts(requests);
    let prompts: Vec<Prompt> = texts
        .iter()
        .map(|(id, system, user)| Prompt {
            id,
            system,
            user,
            prefix: "",
            max_tokens,
            response_format: None,
        })
        .collect();
    let sampling = crate::generate::Sampling {
        temperature: 0.0,
        top_p: 1.0,
        seed: 1,
        max_new_tokens: max_tokens,
    };
    let mut tokens = 0u64;
    let t = Instant::now();
    client.run_bench(&prompts, &sampling, concurrency, |a| {
        if let Answer::Done(r) = a {
            tokens += r.completion_tokens as u64;
        }
    })?;
    Ok((tokens as f64 / t.elapsed().as_secs_f64(), tokens))
}

/// The same prompts through our own generator (continuous batching at `batch`), greedy,
/// prefill included; generations end at end-of-sequence or `max_tokens`.
pub fn local_rate(
    gen: &mut crate::generate::Generator,
    format: crate::tokenizer::ChatFormat,
    requests: usize,
    batch: usize,
    max_tokens: usize,
) -> Result<(f64, u64)> {
    gen.batch_size = batch;
    gen.sampling.temperature = 0.0;
    gen.sampling.max_new_tokens = max_tokens;
    let reqs: Vec<crate::generate::Request> = bench_prompts(requests)
        .into_iter()
        .map(|(id, system, user)| {
            Ok(crate::generate::Request {
                id,
                prompt: gen.tokenizer.encode(&format.render(&system, &user))?,
                max_new_tokens: None,
            })
        })
        .collect::<Result<_>>()?;
    let t = Instant::now();
    let stats = gen.generate(reqs, |_| Ok(true))?;
    Ok((
        stats.generated_tokens as f64 / t.elapsed().as_secs_f64(),
        stats.generated_tokens,
    ))
}
