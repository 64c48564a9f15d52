//! Prompts ready to run ([`Job`]) and the generation loop shared by every task: jobs not
//! yet in a raw file go to the generator (local or server), and each record is appended
//! to its raw file as it finishes, so a killed run resumes where it stopped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::backend::{Backend, LoadedGenerator};
use crate::error::{Result, SynthError};
use crate::generate::{Finish, Request, Sampling};
use crate::passages::Passage;
use crate::prompt::Template;
use crate::record::{read_raw, Record, SamplingRecord};
use crate::server::{Answer, Prompt};

/// Progress lines (`synthscale synth` prints them).
pub type Log<'a> = &'a mut dyn FnMut(&str);

/// A prompt ready to run, with what its record needs.
pub struct Job {
    pub id: String,
    pub sources: Vec<String>,
    pub system: String,
    /// The user text (also for the prompt-echo filter).
    pub user: String,
    /// The whole prompt in the local generator's tokens (empty for a server, which applies
    /// the chat template itself).
    pub prompt: Vec<u32>,
    /// The template's response prefix: the start of the answer, and of the record's text.
    pub prefix: String,
    /// The template's cap on new tokens, if any.
    pub max_new_tokens: Option<usize>,
    /// What a server is asked to answer in (the template's `response_format`).
    pub response_format: Option<serde_json::Value>,
}

/// How one generation ended, as its record states it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub id: String,
    pub finish: Finish,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
}

/// Turns the outcome of a job (and its text) into a record.
pub type MakeRecord<'a> = dyn Fn(&Outcome, &Job, String) -> Record + 'a;

/// The sampling a job ran with: the run's, with the template's cap where it is lower.
pub fn sampling_record(s: &Sampling, job: &Job) -> SamplingRecord {
    SamplingRecord {
        temperature: s.temperature,
        top_p: s.top_p,
        max_new_tokens: job
            .max_new_tokens
            .map_or(s.max_new_tokens, |c| c.min(s.max_new_tokens)),
    }
}

/// One job per passage: `tmpl` with `{passage}` filled, its id `<prefix>/<passage id>`.
pub fn passage_jobs(
    gen: &LoadedGenerator,
    tmpl: &Template,
    prefix: &str,
    passages: &[Passage],
) -> Result<Vec<Job>> {
    passages
        .iter()
        .map(|p| {
            let mut values = BTreeMap::new();
            values.insert("passage", p.text.clone());
            make_job(
                gen,
                tmpl,
                format!("{prefix}/{}", p.id),
                vec![p.id.clone()],
                &values,
            )
        })
        .collect()
}

/// The record maker of a task: a record of `kind` and `task` with the generator, the
/// template's hash and the run's sampling (`sampling`) as its provenance.
pub fn record_maker<'a>(
    sampling: &'a Sampling,
    kind: &'a str,
    task: &'a str,
    tmpl: &'a Template,
    gen: &'a LoadedGenerator,
) -> Box<MakeRecord<'a>> {
    Box::new(move |c: &Outcome, job: &Job, text: String| Record {
        id: c.id.clone(),
        text,
        kind: kind.to_string(),
        task: task.to_string(),
        sources: job.sources.clone(),
        generator: gen.id.clone(),
        template_sha256: tmpl.sha256.clone(),
        sampling: sampling_record(sampling, job),
        seed: sampling.seed,
        finish: c.finish,
        prompt_tokens: c.prompt_tokens,
        generated_tokens: c.generated_tokens,
    })
}

/// Builds a job: `tmpl` filled with `values` (for the local generator, rendered in its chat
/// format and tokenized, followed by the template's response prefix).
pub fn make_job(
    gen: &LoadedGenerator,
    tmpl: &Template,
    id: String,
    sources: Vec<String>,
    values: &BTreeMap<&str, String>,
) -> Result<Job> {
    let (system, user) = tmpl.render(values);
    let prompt = match &gen.backend {
        Backend::Local { generator, format } => {
            let mut text = format.render(&system, &user);
            text.push_str(&tmpl.response_prefix);
            generator.tokenizer.encode(&text)?
        }
        Backend::Server { .. } => Vec::new(),
    };
    Ok(Job {
        id,
        sources,
        system,
        user,
        prompt,
        prefix: tmpl.response_prefix.clone(),
        max_new_tokens: tmpl.max_new_tokens,
        response_format: tmpl.response_format.clone(),
    })
}

/// One task's share of a generation run: its prompts, its raw file, how to make records.
pub struct Sink<'a> {
    pub raw_path: PathBuf,
    pub jobs: &'a [Job],
    pub make: &'a MakeRecord<'a>,
    pub what: String,
}

/// What one sink got from a generation run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Generated {
    /// Records appended now.
    pub records: usize,
    pub tokens: u64,
    /// Server answers that were not completions (logged, not written; a rerun asks again).
    pub malformed: usize,
}

/// Generates every job whose id is not yet in `raw_path`, appending records as they finish.
pub fn generate_jobs(
    raw_path: &Path,
    jobs: &[Job],
    gen: &LoadedGenerator,
    make: &MakeRecord<'_>,
    log: Log,
    what: &str,
) -> Result<Generated> {
    let sink = Sink {
        raw_path: raw_path.to_path_buf(),
        jobs,
        make,
        what: what.to_string(),
    };
    let out = generate_sinks(&[sink], gen, log)?;
    Ok(out[0])
}

/// Merges several queues into one in proportion to their lengths: item `i` of a queue of
/// `n` goes at fraction `(i + ½) / n` of the whole (ties by queue order). Any prefix of the
/// result, a run stopped early, then holds about the same share of every queue.
pub fn proportional_order<T>(queues: &[Vec<T>]) -> Vec<(usize, usize)> {
    let mut keys: Vec<(f64, usize, usize)> = queues
        .iter()
        .enumerate()
        .flat_map(|(q, items)| {
            let n = items.len() as f64;
            (0..items.len()).map(move |i| ((i as f64 + 0.5) / n, q, i))
        })
        .collect();
    keys.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    keys.into_iter().map(|(_, q, i)| (q, i)).collect()
}

/// The jobs of `sink` not yet in its raw file. Refuses a raw file made with another
/// generator, template or sampling (mixing them would make the corpus unreproducible).
fn pending<'a>(sink: &Sink<'a>) -> Result<Vec<&'a Job>> {
    let existing = read_raw(&sink.raw_path)?;
    let by_id: HashMap<&str, &Job> = sink.jobs.iter().map(|j| (j.id.as_str(), j)).collect();
    let mut done = HashSet::new();
    for r in &existing {
        if let Some(job) = by_id.get(r.id.as_str()) {
            let probe = (sink.make)(
                &Outcome {
                    id: r.id.clone(),
                    finish: r.finish,
                    prompt_tokens: r.prompt_tokens,
                    generated_tokens: r.generated_tokens,
                },
                job,
                String::new(),
            );
            if probe.generator != r.generator
                || probe.template_sha256 != r.template_sha256
                || probe.sampling != r.sampling
                || probe.seed != r.seed
            {
                return Err(SynthError::field(
                    &sink.raw_path,
                    "record",
                    format!(
                        "`{}` was made with another generator, template, sampling or seed; move the file away or set another work_dir",
                        r.id
                    ),
                ));
            }
        }
        done.insert(r.id.clone());
    }
    Ok(sink.jobs.iter().filter(|j| !done.contains(&j.id)).collect())
}

/// Appends records to the sinks' raw files and counts them.
struct Appender<'s, 'a> {
    sinks: &'s [Sink<'a>],
    writers: Vec<Option<BufWriter<File>>>,
    counts: Vec<Generated>,
    total: usize,
    n: usize,
    tokens: u64,
    t0: std::time::Instant,
}

impl Appender<'_, '_> {
    /// Appends the record of `job`; `text` is the whole answer, prefix included.
    fn append(&mut self, si: usize, job: &Job, out: &Outcome, text: &str, log: Log) -> Result<()> {
        let sink = &self.sinks[si];
        let text = text.trim().to_string();
        let rec = (sink.make)(out, job, text);
        let mut line = serde_json::to_string(&rec).expect("serializable");
        line.push('\n');
        if self.writers[si].is_none() {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&sink.raw_path)
                .map_err(|e| SynthError::write(&sink.raw_path, e))?;
            self.writers[si] = Some(BufWriter::new(file));
        }
        let w = self.writers[si].as_mut().expect("opened");
        w.write_all(line.as_bytes())
            .and_then(|_| w.flush())
            .map_err(|e| SynthError::write(&sink.raw_path, e))?;
        self.n += 1;
        self.tokens += out.generated_tokens as u64;
        self.counts[si].records += 1;
        self.counts[si].tokens += out.generated_tokens as u64;
        if self.n % 10 == 0 || self.n == self.total {
            let dt = self.t0.elapsed().as_secs_f64();
            log(&format!(
                "{}/{} records, {} tokens, {:.1} tokens/s",
                self.n,
                self.total,
                self.tokens,
                self.tokens as f64 / dt.max(1e-9)
            ));
        }
        Ok(())
    }
}

/// [`generate_jobs`] for several tasks at once: their prompts are merged into one queue in
/// proportion to each task's count ([`proportional_order`]), so every task advances at its
/// own rate and the batch (or the server's queue) stays full.
pub fn generate_sinks(sinks: &[Sink], gen: &LoadedGenerator, log: Log) -> Result<Vec<Generated>> {
    let mut todos: Vec<Vec<&Job>> = Vec::new();
    let mut owner: HashMap<&str, usize> = HashMap::new();
    for (si, sink) in sinks.iter().enumerate() {
        let todo = pending(sink)?;
        log(&format!(
            "{}: {} prompts, {} done before, {} to generate",
            sink.what,
            sink.jobs.len(),
            sink.jobs.len() - todo.len(),
            todo.len()
        ));
        for j in &todo {
            owner.insert(j.id.as_str(), si);
        }
        todos.push(todo);
    }
    let order: Vec<&Job> = proportional_order(&todos)
        .into_iter()
        .map(|(t, i)| todos[t][i])
        .collect();
    let mut app = Appender {
        sinks,
        writers: (0..sinks.len()).map(|_| None).collect(),
        counts: vec![Generated::default(); sinks.len()],
        total: order.len(),
        n: 0,
        tokens: 0,
        t0: std::time::Instant::now(),
    };
    if order.is_empty() {
        return Ok(app.counts);
    }
    match &gen.backend {
        Backend::Local { generator, .. } => {
            let by_id: HashMap<&str, &Job> = order.iter().map(|j| (j.id.as_str(), *j)).collect();
            let requests = order.iter().map(|j| Request {
                id: j.id.clone(),
                prompt: j.prompt.clone(),
                max_new_tokens: j.max_new_tokens,
            });
            generator.generate(requests, |c| {
                let job = by_id[c.id.as_str()];
                let text = format!("{}{}", job.prefix, generator.tokenizer.decode(&c.tokens)?);
                let out = Outcome {
                    generated_tokens: c.tokens.len(),
                    id: c.id,
                    finish: c.finish,
                    prompt_tokens: c.prompt_tokens,
                };
                app.append(owner[job.id.as_str()], job, &out, &text, log)?;
                Ok(true)
            })?;
        }
        Backend::Server { client, .. } => {
            let prompts: Vec<Prompt> = order
                .iter()
                .map(|j| Prompt {
                    id: &j.id,
                    system: &j.system,
                    user: &j.user,
                    prefix: &j.prefix,
                    max_tokens: sampling_record(&gen.sampling, j).max_new_tokens,
                    response_format: j.response_format.as_ref(),
                })
                .collect();
            client.run_all(&prompts, &gen.sampling, |i, answer| {
                let job = order[i];
                let si = owner[job.id.as_str()];
                match answer {
                    Answer::Done(r) => {
                        let out = Outcome {
                            id: job.id.clone(),
                            finish: r.finish,
                            prompt_tokens: r.prompt_tokens,
                            generated_tokens: r.completion_tokens,
                        };
                        // llama.cpp returns a continued assistant turn whole; vLLM and
                        // SGLang return only what follows the prefix.
                        let text = if r.text.starts_with(&job.prefix) {
                            r.text
                        } else {
                            format!("{}{}", job.prefix, r.text)
                        };
                        app.append(si, job, &out, &text, log)
                    }
                    Answer::Malformed(why) => {
                        app.counts[si].malformed += 1;
                        log(&format!("{}: malformed answer, not written: {why}", job.id));
                        Ok(())
                    }
                }
            })?;
        }
    }
    Ok(app.counts)
}
