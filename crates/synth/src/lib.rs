//! synthscale's synthetic-data stage: a local Llama-family generator and the tasks that
//! turn a natural corpus into rephrased, textbook and SynthLLM-style data.
//!
//! - [`llama`]: the batched decoder (GGUF or safetensors weights, per-sequence KV caches);
//! - [`tokenizer`]: the generator's tokenizer and chat template;
//! - [`generate`]: continuous batching and sampling with per-record random streams;
//! - [`config`]: the synth config file; [`prompt`]: prompt templates;
//! - [`passages`]: source documents cut into passages;
//! - [`synthllm`]: SynthLLM level 2/3 extraction, concept graph and walks;
//! - [`filter`]: length, duplicate, echo and refusal filters;
//! - [`record`]: a generated text with its provenance; raw files; filtered outputs;
//! - [`backend`]: the generator a run uses, local or an inference server ([`server`]);
//! - [`job`]: prompts ready to run and the resumable generation loop every task shares;
//! - [`run`]: `synthscale synth`: every task from passages to filtered corpus.
//! - [`bench`]: decoding throughput against candle-transformers' quantized Llama.

pub mod backend;
pub mod bench;
pub mod config;
pub mod error;
pub mod filter;
pub mod generate;
pub mod job;
pub mod llama;
pub mod passages;
pub mod prompt;
pub mod record;
pub mod run;
pub mod server;
pub mod synthllm;
pub mod tokenizer;

pub use config::SynthConfig;
pub use error::{Result, SynthError};
pub use synthscale_data::tokenizer::sha256_hex;
