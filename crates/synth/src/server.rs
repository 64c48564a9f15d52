//! Generation through an OpenAI-compatible inference server (vLLM, SGLang, llama.cpp's
//! server): `[generator] kind = "openai"`.
//!
//! Up to `max_concurrency` requests are in flight at once (the server batches them); each
//! is retried on timeouts, broken connections, 429 and 5xx answers with capped exponential
//! backoff and jitter, and fails the run after `max_retries` retries. A 4xx answer other
//! than 429 is the user's to fix (a wrong key, model or parameter): it stops the run at once.
//! An answer that is not a completion (bad JSON, no text, no usage, an unknown finish
//! reason) is returned as [`Answer::Malformed`], never as a record.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde_json::{json, Value};

use crate::config::{Api, GeneratorConfig};
use crate::error::{Result, SynthError};
use crate::generate::{stream_seed, Finish, Sampling};

/// Longest wait between two tries of one request.
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// A client for one server and model.
#[derive(Clone)]
pub struct ServerClient {
    agent: ureq::Agent,
    /// Up to and including the API version, without a trailing slash (`…/v1`).
    base_url: String,
    /// The model id as the server lists it.
    pub model: String,
    key: Option<String>,
    api: Api,
    max_concurrency: usize,
    max_retries: u32,
    /// The first backoff; doubled on each retry up to [`BACKOFF_CAP`].
    retry_base: Duration,
    /// Benchmarks only: every answer runs to `max_tokens`.
    ignore_eos: bool,
}

/// What a request needs: the rendered prompt texts and how to sample.
pub struct Prompt<'a> {
    /// Keys the seed and names the request in errors.
    pub id: &'a str,
    pub system: &'a str,
    pub user: &'a str,
    /// The start of the answer (given to the model as the start of its turn).
    pub prefix: &'a str,
    pub max_tokens: usize,
    /// The request's `response_format` (a JSON object or schema), if any.
    pub response_format: Option<&'a Value>,
}

/// One completion as the server returned it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The generated text, without the prefix.
    pub text: String,
    pub finish: Finish,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

/// What came back for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Done(Reply),
    /// Not a completion; the reason, for the log and the drop counts.
    Malformed(String),
}

impl ServerClient {
    /// A client for `cfg` (validated: `base_url` is set); reads the API key from the
    /// environment variable the config names.
    pub fn new(cfg: &GeneratorConfig, cfg_path: &std::path::Path) -> Result<Self> {
        let base_url = cfg
            .base_url
            .clone()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string();
        let key = match &cfg.api_key_env {
            None => None,
            Some(var) => Some(std::env::var(var).map_err(|_| {
                SynthError::field(
                    cfg_path,
                    "generator.api_key_env",
                    format!("the environment variable {var} is not set"),
                )
            })?),
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs_f64(cfg.request_timeout_s)))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(ServerClient {
            agent,
            base_url,
            model: cfg.model.to_string_lossy().into_owned(),
            key,
            api: cfg.api,
            max_concurrency: cfg.max_concurrency,
            max_retries: cfg.max_retries,
            retry_base: Duration::from_secs_f64(cfg.retry_base_s),
            ignore_eos: false,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn max_concurrency(&self) -> usize {
        self.max_concurrency
    }

    /// Checks that the server answers and serves `model` (`GET /models`); returns the ids
    /// it serves. Retried like a completion while the server is starting or unreachable.
    pub fn check_model(&self, cfg_path: &std::path::Path) -> Result<Vec<String>> {
        let url = format!("{}/models", self.base_url);
        let body = self.with_retries("GET /models", &AtomicBool::new(false), || {
            let mut req = self.agent.get(&url);
            if let Some(k) = &self.key {
                req = req.header("Authorization", &format!("Bearer {k}"));
            }
            req.call()
        })?;
        let ids: Vec<String> = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| {
                v["data"].as_array().map(|a| {
                    a.iter()
                        .filter_map(|m| m["id"].as_str().map(str::to_string))
                        .collect()
                })
            })
            .unwrap_or_default();
        if !ids.is_empty() && !ids.contains(&self.model) {
            return Err(SynthError::field(
                cfg_path,
                "generator.model",
                format!(
                    "the server at {} serves {ids:?}, not {:?}",
                    self.base_url, self.model
                ),
            ));
        }
        Ok(ids)
    }

    /// The request body for `p` (chat, or a plain completion prompt).
    pub fn body(&self, p: &Prompt, s: &Sampling) -> Value {
        // A per-record seed, so a resampled record does not depend on its neighbours; kept
        // below 2^31 for servers that read it as a signed 32-bit integer.
        let seed = stream_seed(s.seed, p.id) % (1 << 31);
        let mut b = json!({
            "model": self.model,
            "n": 1,
            "seed": seed,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": p.max_tokens,
        });
        match self.api {
            Api::Chat => {
                let mut messages = Vec::new();
                if !p.system.is_empty() {
                    messages.push(json!({"role": "system", "content": p.system}));
                }
                messages.push(json!({"role": "user", "content": p.user}));
                if !p.prefix.is_empty() {
                    // The answer's start as the assistant's unfinished turn: llama.cpp
                    // continues a final assistant message; vLLM and SGLang need the flags.
                    messages.push(json!({"role": "assistant", "content": p.prefix}));
                    b["continue_final_message"] = json!(true);
                    b["add_generation_prompt"] = json!(false);
                }
                b["messages"] = json!(messages);
            }
            Api::Completions => {
                let mut text = String::new();
                if !p.system.is_empty() {
                    text.push_str(p.system);
                    text.push_str("\n\n");
                }
                text.push_str(p.user);
                text.push_str("\n\n");
                text.push_str(p.prefix);
                b["prompt"] = json!(text);
            }
        }
        if let Some(rf) = p.response_format {
            b["response_format"] = rf.clone();
        }
        if self.ignore_eos {
            b["ignore_eos"] = json!(true);
        }
        b
    }

    fn endpoint(&self) -> String {
        match self.api {
            Api::Chat => format!("{}/chat/completions", self.base_url),
            Api::Completions => format!("{}/completions", self.base_url),
        }
    }

    /// Sends one request, with retries.
    pub fn complete(&self, p: &Prompt, s: &Sampling, stop: &AtomicBool) -> Result<Answer> {
        let body = self.body(p, s);
        let url = self.endpoint();
        let text = self.with_retries(p.id, stop, || {
            let mut req = self.agent.post(&url);
            if let Some(k) = &self.key {
                req = req.header("Authorization", &format!("Bearer {k}"));
            }
            req.send_json(&body)
        })?;
        Ok(parse_reply(&text, self.api))
    }

    /// Runs `call` until it gives a 2xx body: transport errors, 429 and 5xx are retried
    /// after a backoff; another status is an error at once. Gives up when `stop` is set.
    fn with_retries(
        &self,
        what: &str,
        stop: &AtomicBool,
        call: impl Fn() -> std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<String> {
        let mut tries = 0u32;
        loop {
            tries += 1;
            let last = match call() {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    match resp.body_mut().read_to_string() {
                        Ok(body) if (200..300).contains(&status) => return Ok(body),
                        Ok(body) if status == 429 || status >= 500 => {
                            format!("HTTP {status}: {}", server_message(&body))
                        }
                        Ok(body) => {
                            return Err(SynthError::Server {
                                url: self.base_url.clone(),
                                request: what.to_string(),
                                status,
                                message: server_message(&body),
                            })
                        }
                        // A body cut off mid-transfer: the connection broke.
                        Err(e) => format!("HTTP {status}, reading the answer: {e}"),
                    }
                }
                Err(e) => e.to_string(),
            };
            if tries > self.max_retries || stop.load(Ordering::Relaxed) {
                return Err(SynthError::Unreachable {
                    url: self.base_url.clone(),
                    request: what.to_string(),
                    tries,
                    last,
                });
            }
            let exp = self.retry_base.as_secs_f64() * 2f64.powi(tries as i32 - 1);
            let wait = exp.min(BACKOFF_CAP.as_secs_f64()) * rand::rng().random_range(0.5..=1.0);
            // Sleep in short steps so a stopped run does not wait out a long backoff.
            let until = std::time::Instant::now() + Duration::from_secs_f64(wait);
            while std::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Completes every prompt with up to `max_concurrency` requests in flight, calling
    /// `done(i, answer)` on this thread as each finishes (not in order). The first error,
    /// from a request or from `done`, stops new requests; answers already in flight are
    /// still handed to `done`, then the error is returned.
    pub fn run_all(
        &self,
        prompts: &[Prompt],
        s: &Sampling,
        mut done: impl FnMut(usize, Answer) -> Result<()>,
    ) -> Result<()> {
        let queue = Mutex::new((0..prompts.len()).collect::<VecDeque<usize>>());
        let stop = AtomicBool::new(false);
        let workers = self.max_concurrency.min(prompts.len()).max(1);
        let (tx, rx) = mpsc::channel::<(usize, Result<Answer>)>();
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let tx = tx.clone();
                let (queue, stop) = (&queue, &stop);
                scope.spawn(move || loop {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Some(i) = queue.lock().expect("queue lock").pop_front() else {
                        break;
                    };
                    let out = self.complete(&prompts[i], s, stop);
                    if tx.send((i, out)).is_err() {
                        break;
                    }
                });
            }
            drop(tx);
            let mut first: Option<SynthError> = None;
            for (i, out) in rx {
                let res = out.and_then(|a| done(i, a));
                if let Err(e) = res {
                    stop.store(true, Ordering::Relaxed);
                    // A request cut short by the stop is not the cause.
                    if first.is_none() {
                        first = Some(e);
                    }
                }
            }
            first.map_or(Ok(()), Err)
        })
    }
}

impl ServerClient {
    /// [`ServerClient::run_all`] at a given concurrency, the server told to ignore
    /// end-of-sequence (`ignore_eos`, which llama.cpp, vLLM and SGLang read) so that every
    /// answer runs to `max_tokens`: for `synthscale bench synth`.
    pub fn run_bench(
        &self,
        prompts: &[Prompt],
        s: &Sampling,
        concurrency: usize,
        mut each: impl FnMut(Answer),
    ) -> Result<()> {
        let mut bench = self.clone();
        bench.max_concurrency = concurrency;
        bench.ignore_eos = true;
        bench.run_all(prompts, s, |_, a| {
            each(a);
            Ok(())
        })
    }
}

/// The server's own error text from an error body (`{"error": {"message": …}}` in the
/// OpenAI shape, or the raw body, cut to 300 characters).
fn server_message(body: &str) -> String {
    let v: Option<Value> = serde_json::from_str(body).ok();
    let msg = v
        .as_ref()
        .and_then(|v| {
            v["error"]["message"]
                .as_str()
                .or_else(|| v["error"].as_str())
                .or_else(|| v["message"].as_str())
                .or_else(|| v["detail"].as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.trim().to_string());
    msg.chars().take(300).collect()
}

/// Reads one completion from a 2xx body.
pub fn parse_reply(body: &str, api: Api) -> Answer {
    let bad = |why: &str| Answer::Malformed(why.to_string());
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return bad("the answer is not JSON (cut short?)");
    };
    let Some(choice) = v["choices"].as_array().and_then(|c| c.first()) else {
        return bad("the answer has no choices");
    };
    let text = match api {
        Api::Chat => choice["message"]["content"].as_str(),
        Api::Completions => choice["text"].as_str(),
    };
    let Some(text) = text else {
        return bad("the answer's choice has no text");
    };
    let finish = match choice["finish_reason"].as_str() {
        Some("stop") | Some("eos") => Finish::Stop,
        Some("length") => Finish::Length,
        other => return Answer::Malformed(format!("finish reason {other:?}")),
    };
    let usage = &v["usage"];
    let (Some(p), Some(c)) = (
        usage["prompt_tokens"].as_u64(),
        usage["completion_tokens"].as_u64(),
    ) else {
        return bad("the answer has no token usage");
    };
    Answer::Done(Reply {
        text: text.to_string(),
        finish,
        prompt_tokens: p as usize,
        completion_tokens: c as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_and_malformed_answers() {
        let ok = r#"{"choices":[{"finish_reason":"length","index":0,"message":{"role":"assistant","content":"The cat"}}],"usage":{"completion_tokens":40,"prompt_tokens":29}}"#;
        assert_eq!(
            parse_reply(ok, Api::Chat),
            Answer::Done(Reply {
                text: "The cat".into(),
                finish: Finish::Length,
                prompt_tokens: 29,
                completion_tokens: 40
            })
        );
        let cut = &ok[..ok.len() - 20];
        assert!(matches!(parse_reply(cut, Api::Chat), Answer::Malformed(_)));
        let no_usage = r#"{"choices":[{"finish_reason":"stop","text":"x"}]}"#;
        assert!(matches!(
            parse_reply(no_usage, Api::Completions),
            Answer::Malformed(_)
        ));
        let filtered = r#"{"choices":[{"finish_reason":"content_filter","text":"x"}],"usage":{"completion_tokens":1,"prompt_tokens":2}}"#;
        assert!(matches!(
            parse_reply(filtered, Api::Completions),
            Answer::Malformed(_)
        ));
        assert_eq!(
            server_message(
                r#"{"error":{"code":401,"message":"Invalid API Key","type":"authentication_error"}}"#
            ),
            "Invalid API Key"
        );
    }
}
