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
    let mut f = std::fs::File::open(path).map_err(SynthError::io(path))?;
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
