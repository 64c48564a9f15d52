//! The synth config (`synthscale synth <synth.toml>`): generator, sampling, sources,
//! chunking, tasks and filters, validated at load before any work starts.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, SynthError};
use crate::filter::FilterConfig;
use crate::generate::Sampling;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthConfig {
    pub generator: GeneratorConfig,
    #[serde(default)]
    pub sampling: Sampling,
    #[serde(default)]
    pub chunking: ChunkConfig,
    #[serde(default)]
    pub filter: FilterConfig,
    /// Where raw generations (`<task>.raw.jsonl`, written as they finish) and summaries go.
    pub work_dir: PathBuf,
    pub sources: Vec<SourceSpec>,
    pub tasks: Vec<TaskConfig>,
}

/// Where generations come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GeneratorKind {
    /// synthscale's own candle decoder on `model` (a GGUF file or an HF folder).
    #[default]
    Local,
    /// An OpenAI-compatible inference server (vLLM, SGLang, llama.cpp) at `base_url`,
    /// serving `model`.
    Openai,
}

/// Which endpoint of an OpenAI-compatible server generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Api {
    /// `/chat/completions`: the server applies the model's chat template.
    #[default]
    Chat,
    /// `/completions`: the template's system and user texts and the response prefix sent
    /// as one plain prompt (base models without a chat template).
    Completions,
}

/// The generator model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    /// `local` (default) or `openai`.
    #[serde(default)]
    pub kind: GeneratorKind,
    /// `local`: a GGUF file, or an HF folder with `config.json` and `model.safetensors`.
    /// `openai`: the model id the server serves (as its `/v1/models` lists it).
    pub model: PathBuf,
    /// A `tokenizer.json` (or, for `openai`, a GGUF file whose metadata holds one); by
    /// default the GGUF metadata or `<model>/tokenizer.json`. With `openai` it only
    /// measures passages; without it a passage's tokens are estimated as bytes / 4.
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    /// `openai`: the API root, up to the version (`http://127.0.0.1:8000/v1`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// `openai`: the environment variable holding the API key (sent as a bearer token,
    /// never written anywhere); none: no key is sent.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// `openai`: `chat` (default) or `completions`.
    #[serde(default)]
    pub api: Api,
    /// `openai`: requests in flight at once (the server batches them).
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// `openai`: the deadline of one request, in seconds (connecting, waiting, reading).
    #[serde(default = "default_request_timeout")]
    pub request_timeout_s: f64,
    /// `openai`: retries of a request after a timeout, a broken connection, 429 or 5xx,
    /// before the run stops (keeping every finished record).
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// `openai`: the first backoff in seconds; doubled on each retry, capped at 30 s, with
    /// jitter (×0.5–1).
    #[serde(default = "default_retry_base")]
    pub retry_base_s: f64,
    /// Name recorded in every record (default: the model file's name).
    #[serde(default)]
    pub name: Option<String>,
    /// Sequences decoded together.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// `cpu` (the fused CPU decoder), or `cuda` (GPU 0 of those visible; a binary built
    /// with `--features cuda`), where the weights, caches and attention live on the GPU.
    #[serde(default = "default_device")]
    pub device: String,
}

fn default_device() -> String {
    "cpu".into()
}

fn default_batch() -> usize {
    16
}

fn default_concurrency() -> usize {
    16
}

fn default_request_timeout() -> f64 {
    600.0
}

fn default_retries() -> u32 {
    6
}

fn default_retry_base() -> f64 {
    1.0
}

/// Cutting source documents into passages that fit the prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChunkConfig {
    /// Largest passage, in generator tokens (paragraphs are packed up to it).
    pub max_tokens: usize,
    /// Passages shorter than this are not used (headings, verse numbers, stubs).
    pub min_tokens: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        ChunkConfig {
            // ~300–500 tokens: long enough to carry a topic, short enough that a 135M
            // generator keeps to it.
            max_tokens: 450,
            min_tokens: 120,
        }
    }
}

/// One source corpus (read through the data crate: text or JSONL, gzip or not).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Short name, recorded in source ids.
    pub name: String,
    pub path: PathBuf,
    /// At most this many passages from this source (a seeded choice over all of them).
    #[serde(default)]
    pub max_passages: Option<usize>,
}

/// What a task does with its passages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// One prompt per passage (`{passage}`): rephrasing, textbook sections, SynthLLM level 1.
    Passage,
    /// SynthLLM level 2: extract topics and concepts from a passage, then a prompt with
    /// the passage and 2–3 of its concepts (`{passage}`, `{concepts}`).
    Level2,
    /// SynthLLM level 3: a walk on the topic/concept graph of all extractions, the two
    /// passages closest to the walk (Jaccard), and a prompt with concepts from different
    /// topics (`{passage}` holds both passages, `{concepts}`, `{topics}`).
    Level3,
}

/// One generation task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    /// Names the raw file and appears in every record.
    pub name: String,
    pub method: Method,
    /// `rephrased` or `textbook`: the kind `synthscale data prepare` reads it as.
    pub kind: String,
    /// The prompt template (TOML with `system` and `user`).
    pub template: PathBuf,
    /// Level 2 and 3: the extraction template (`{passage}`).
    #[serde(default)]
    pub extract_template: Option<PathBuf>,
    /// The filtered corpus (`.jsonl`, or `.jsonl.gz` to compress).
    pub output: PathBuf,
    /// At most this many records (None: one per passage, or per walk for level 3).
    #[serde(default)]
    pub max_records: Option<usize>,
}

impl SynthConfig {
    /// Reads and validates a config; relative paths are taken from the current directory.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SynthError::missing_or_read(path, e, "synth config"))?;
        let cfg: SynthConfig = toml::from_str(&text).map_err(|e| {
            let span = e
                .span()
                .map(|s| format!(" (line {})", text[..s.start].lines().count().max(1)))
                .unwrap_or_default();
            SynthError::field(path, "toml", format!("{}{span}", e.message()))
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    pub fn validate(&self, path: &Path) -> Result<()> {
        let invalid = |field: &str, msg: String| Err(SynthError::field(path, field, msg));
        if self.generator.batch_size == 0 || self.generator.batch_size > 1024 {
            return invalid(
                "generator.batch_size",
                format!("{} is outside 1..=1024", self.generator.batch_size),
            );
        }
        if !matches!(self.generator.device.as_str(), "cpu" | "cuda") {
            return invalid(
                "generator.device",
                format!(
                    "{:?} is neither \"cpu\" nor \"cuda\"",
                    self.generator.device
                ),
            );
        }
        let g = &self.generator;
        if g.kind == GeneratorKind::Openai {
            match &g.base_url {
                None => {
                    return invalid(
                        "generator.base_url",
                        "kind = \"openai\" needs the server's API root, e.g. \"http://127.0.0.1:8000/v1\"".into(),
                    )
                }
                Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                    return invalid(
                        "generator.base_url",
                        format!("{u:?} is not an http:// or https:// URL"),
                    )
                }
                _ => {}
            }
            if g.max_concurrency == 0 || g.max_concurrency > 4096 {
                return invalid(
                    "generator.max_concurrency",
                    format!("{} is outside 1..=4096", g.max_concurrency),
                );
            }
            if !(g.request_timeout_s > 0.0 && g.request_timeout_s.is_finite()) {
                return invalid(
                    "generator.request_timeout_s",
                    format!(
                        "{} must be a positive number of seconds",
                        g.request_timeout_s
                    ),
                );
            }
            if !(0.0..=60.0).contains(&g.retry_base_s) {
                return invalid(
                    "generator.retry_base_s",
                    format!("{} is outside [0, 60]", g.retry_base_s),
                );
            }
            if g.max_retries > 100 {
                return invalid(
                    "generator.max_retries",
                    format!("{} is above 100", g.max_retries),
                );
            }
        } else {
            for (field, set) in [
                ("base_url", g.base_url.is_some()),
                ("api_key_env", g.api_key_env.is_some()),
            ] {
                if set {
                    return invalid(
                        &format!("generator.{field}"),
                        "is for kind = \"openai\"; this generator is local".into(),
                    );
                }
            }
        }
        let s = &self.sampling;
        if !(0.0..=5.0).contains(&s.temperature) {
            return invalid(
                "sampling.temperature",
                format!("{} is outside [0, 5]", s.temperature),
            );
        }
        if !(s.top_p > 0.0 && s.top_p <= 1.0) {
            return invalid("sampling.top_p", format!("{} is outside (0, 1]", s.top_p));
        }
        if s.max_new_tokens == 0 {
            return invalid("sampling.max_new_tokens", "must be at least 1".into());
        }
        let c = &self.chunking;
        if c.min_tokens == 0 || c.min_tokens > c.max_tokens {
            return invalid(
                "chunking.min_tokens",
                format!(
                    "{} must be in 1..=max_tokens ({})",
                    c.min_tokens, c.max_tokens
                ),
            );
        }
        self.filter.validate(path)?;
        if self.sources.is_empty() {
            return invalid("sources", "at least one [[sources]] entry is needed".into());
        }
        for (i, src) in self.sources.iter().enumerate() {
            if !is_file_name(&src.name) {
                return invalid(
                    &format!("sources[{i}].name"),
                    format!("{:?} must be non-empty [A-Za-z0-9._-]", src.name),
                );
            }
            if src.max_passages == Some(0) {
                return invalid(
                    &format!("sources[{i}].max_passages"),
                    "must be at least 1".into(),
                );
            }
        }
        if self.tasks.is_empty() {
            return invalid("tasks", "at least one [[tasks]] entry is needed".into());
        }
        let mut names = std::collections::HashSet::new();
        for (i, t) in self.tasks.iter().enumerate() {
            if !names.insert(&t.name) || !is_file_name(&t.name) {
                return invalid(
                    &format!("tasks[{i}].name"),
                    format!("{:?} must be unique, non-empty [A-Za-z0-9._-]", t.name),
                );
            }
            if t.kind != "rephrased" && t.kind != "textbook" {
                return invalid(
                    &format!("tasks[{i}].kind"),
                    format!("{:?} must be `rephrased` or `textbook`", t.kind),
                );
            }
            if t.method != Method::Passage && t.extract_template.is_none() {
                return invalid(
                    &format!("tasks[{i}].extract_template"),
                    "levels 2 and 3 need an extraction template".into(),
                );
            }
            if t.max_records == Some(0) {
                return invalid(
                    &format!("tasks[{i}].max_records"),
                    "must be at least 1".into(),
                );
            }
        }
        Ok(())
    }
}

/// A source or task name, which becomes part of file names and record ids: non-empty,
/// `[A-Za-z0-9._-]` only.
fn is_file_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
}
