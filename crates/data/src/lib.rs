//! synthscale's data stage: corpora → tokens → exact mixtures.
//!
//! - [`config`]: the `[data]` section of a manifest;
//! - [`source`]: reading plain text and JSONL (gzip or not) into documents;
//! - [`tokenizer`]: loading or training a tokenizer, identified by hash;
//! - [`shard`]: the binary token-shard format, memory-mapped;
//! - [`prepare`]: the deterministic validation split and `data prepare`;
//! - [`datadir`]: opening a prepared data directory;
//! - [`mixture`]: the exact, resumable mixture sampler;
//! - [`unigram`]: token counts and the unigram loss of a mixture on a domain;
//! - [`tempname`]: temporary names that carry their owner, and removing those of dead ones.

pub mod config;
pub mod datadir;
pub mod error;
pub mod mixture;
pub mod prepare;
pub mod shard;
pub mod source;
pub mod tempname;
pub mod tokenizer;
pub mod unigram;

pub use config::{DataConfig, SourceConfig, SourceKind, TokenizerSpec};
pub use datadir::{DataDir, DataMeta};
pub use error::{DataError, Result};
pub use mixture::{eval_batches, Batch, Mixture, MixtureReport, MixtureSampler, SamplerConfig};
pub use prepare::{prepare, PrepareEvent, PrepareOptions, PrepareOutcome};
pub use tokenizer::TextTokenizer;
pub use unigram::TokenCounts;
