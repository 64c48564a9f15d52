//! `synthscale synth`: passages → prompts → generations appended to `<work_dir>/<task>.raw.jsonl`
//! as they finish (a rerun resumes, skipping ids already there) → filtered corpus with
//! provenance and a summary.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{GeneratorConfig, Method, SynthConfig, TaskConfig};
use crate::error::{Result, SynthError};
use crate::filter::{Filter, FilterSummary};
use crate::generate::{Completion, Finish, Generator, Request, Sampling};
use crate::llama::Llama;
use crate::passages::{read_passages, Passage};
use crate::prompt::Template;
use crate::sha256_hex;
use crate::synthllm;
use crate::tokenizer::{ChatFormat, ChatTokenizer};

/// The generator as records name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratorId {
    pub name: String,
    pub sha256: String,
}

/// Sampling settings recorded with each text.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SamplingRecord {
    pub temperature: f32,
    pub top_p: f32,
    pub max_new_tokens: usize,
}

/// One generated text with its provenance (one JSONL line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub text: String,
    /// `rephrased` or `textbook`.
    pub kind: String,
    pub task: String,
    /// Passage ids (`<source>:<document id>#<chunk>`) the prompt was made from.
    pub sources: Vec<String>,
    pub generator: GeneratorId,
    pub template_sha256: String,
    pub sampling: SamplingRecord,
    /// The run's seed; the record's own stream is sha256(seed ‖ id).
    pub seed: u64,
    pub finish: Finish,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
}

/// Turns a completion of a job (and its decoded text) into a record.
pub type MakeRecord<'a> = dyn Fn(&Completion, &Job, String) -> Record + 'a;

/// A loaded generator with everything records need to name it.
pub struct LoadedGenerator {
    pub generator: Generator,
    pub format: ChatFormat,
    pub id: GeneratorId,
}

/// Loads the model and tokenizer named by `cfg`.
pub fn load_generator(cfg: &GeneratorConfig, sampling: Sampling) -> Result<LoadedGenerator> {
    let path = &cfg.model;
    if !path.exists() {
        return Err(SynthError::Missing {
            path: path.clone(),
            what: "generator model (scripts/fetch-generator.sh fetches SmolLM2)".into(),
        });
    }
    let (model, tokenizer, format, weights) = if path.is_dir() {
        let model = Llama::from_hf_dir(path)?;
        let tok_path = cfg
            .tokenizer
            .clone()
            .unwrap_or_else(|| path.join("tokenizer.json"));
        let eos = std::fs::read_to_string(path.join("config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|j| j["eos_token_id"].as_u64())
            .map(|v| v as u32);
        let tok = ChatTokenizer::from_file(&tok_path, eos)?;
        let format = if tok.token_to_id("<|im_start|>").is_some() {
            ChatFormat::ChatMl
        } else {
            ChatFormat::Plain
        };
        (model, tok, format, path.join("model.safetensors"))
    } else {
        let (model, ct) = Llama::from_gguf(path)?;
        let tok = match &cfg.tokenizer {
            Some(t) => ChatTokenizer::from_file(
                t,
                ct.metadata
                    .get("tokenizer.ggml.eos_token_id")
                    .and_then(|v| v.to_u32().ok()),
            )?,
            None => ChatTokenizer::from_gguf(&ct, path)?,
        };
        let template = ct
            .metadata
            .get("tokenizer.chat_template")
            .and_then(|v| v.to_string().ok())
            .map(|s| s.as_str());
        let format = ChatFormat::from_template(template, path)?;
        (model, tok, format, path.clone())
    };
    if tokenizer.vocab_size() > model.config().vocab_size {
        return Err(SynthError::Weights {
            path: path.clone(),
            message: format!(
                "the tokenizer has {} tokens, the model's embedding only {}",
                tokenizer.vocab_size(),
                model.config().vocab_size
            ),
        });
    }
    let model = match cfg.device.as_str() {
        "cpu" => model,
        _ => model.to_device(&open_cuda(path)?)?,
    };
    let bytes = std::fs::read(&weights).map_err(SynthError::io(&weights))?;
    let id = GeneratorId {
        name: cfg.name.clone().unwrap_or_else(|| {
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        }),
        sha256: sha256_hex(&bytes),
    };
    Ok(LoadedGenerator {
        generator: Generator {
            model,
            tokenizer,
            sampling,
            batch_size: cfg.batch_size,
        },
        format,
        id,
    })
}

/// GPU 0 of those visible, for `device = "cuda"`.
fn open_cuda(model: &Path) -> Result<candle_core::Device> {
    #[cfg(feature = "cuda")]
    {
        candle_core::Device::new_cuda(0).map_err(|e| SynthError::Weights {
            path: model.to_path_buf(),
            message: format!("generator.device = \"cuda\": cannot open CUDA device 0: {e}"),
        })
    }
    #[cfg(not(feature = "cuda"))]
    {
        Err(SynthError::Unsupported {
            path: model.to_path_buf(),
            message: "generator.device = \"cuda\" needs a binary built with --features cuda".into(),
        })
    }
}

/// A prompt ready to run, with what its record needs.
pub struct Job {
    pub id: String,
    pub sources: Vec<String>,
    /// The user text, for the prompt-echo filter.
    pub user: String,
    pub prompt: Vec<u32>,
    /// The template's response prefix: already in the prompt, and the start of the text.
    pub prefix: String,
    /// The template's cap on new tokens, if any.
    pub max_new_tokens: Option<usize>,
}

/// What one task produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskSummary {
    pub task: String,
    pub kind: String,
    pub output: PathBuf,
    pub prompts: usize,
    /// Records generated by this invocation (the rest were in the raw file already).
    pub generated_now: usize,
    pub generated_tokens_now: u64,
    pub filter: FilterSummary,
    pub seconds: f64,
}

/// Progress lines (`synthscale synth` prints them).
pub type Log<'a> = &'a mut dyn FnMut(&str);

/// Reads the records of a raw file; a last line cut short by a kill is dropped (and cut
/// from the file so new records start on a fresh line).
pub fn read_raw(path: &Path) -> Result<Vec<Record>> {
    read_raw_opt(path, true)
}

/// [`read_raw`]; with `repair` false a cut last line is skipped but the file is left alone
/// (for reading a file another run is still appending to).
pub fn read_raw_opt(path: &Path, repair: bool) -> Result<Vec<Record>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let file = File::open(path).map_err(SynthError::io(path))?;
    let mut out = Vec::new();
    let mut good_bytes = 0u64;
    let mut total = 0u64;
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    let mut lineno = 0;
    loop {
        line.clear();
        let n = reader.read_line(&mut line).map_err(SynthError::io(path))?;
        if n == 0 {
            break;
        }
        lineno += 1;
        total += n as u64;
        if !line.ends_with('\n') {
            break; // killed mid-write
        }
        let rec: Record = serde_json::from_str(&line).map_err(|e| {
            SynthError::field(
                path,
                &format!("line {lineno}"),
                format!("not a synth record: {e}"),
            )
        })?;
        out.push(rec);
        good_bytes = total;
    }
    if repair && good_bytes < total {
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(SynthError::io(path))?;
        f.set_len(good_bytes).map_err(SynthError::io(path))?;
    }
    Ok(out)
}

/// Runs every task of `cfg` (loading the generator once).
///
/// With `generate` false nothing is generated: the records already in the raw files are
/// filtered into the outputs (safe while another run is still appending to them).
pub fn run_synth(
    cfg: &SynthConfig,
    cfg_path: &Path,
    generate: bool,
    log: Log,
) -> Result<Vec<TaskSummary>> {
    // Templates first: a bad template fails before the model loads.
    let mut templates = Vec::new();
    for t in &cfg.tasks {
        templates.push(load_task_templates(t)?);
    }
    let gen = load_generator(&cfg.generator, cfg.sampling)?;
    log(&format!(
        "generator {} (sha256 {}…), batch {}",
        gen.id.name,
        &gen.id.sha256[..12],
        cfg.generator.batch_size
    ));
    let count = |s: &str| {
        gen.generator
            .tokenizer
            .encode(s)
            .map(|v| v.len())
            .unwrap_or(0)
    };
    let mut per_source: Vec<Vec<Passage>> = Vec::new();
    for src in &cfg.sources {
        let p = read_passages(src, &cfg.chunking, cfg.sampling.seed, &count)?;
        log(&format!("source {}: {} passages", src.name, p.len()));
        per_source.push(p);
    }
    let passages = interleave(per_source);
    std::fs::create_dir_all(&cfg.work_dir).map_err(SynthError::io(&cfg.work_dir))?;
    let _ = cfg_path;
    let start = std::time::Instant::now();
    let mut all_jobs = Vec::new();
    for (task, (tmpl, extract)) in cfg.tasks.iter().zip(&templates) {
        all_jobs.push(task_jobs(
            cfg,
            task,
            tmpl,
            extract.as_ref(),
            &gen,
            &passages,
            log,
        )?);
    }
    let makers: Vec<Box<MakeRecord<'_>>> = cfg
        .tasks
        .iter()
        .zip(&templates)
        .map(|(task, (tmpl, _))| record_maker(cfg, task, tmpl, &gen))
        .collect();
    let sinks: Vec<Sink> = cfg
        .tasks
        .iter()
        .zip(&all_jobs)
        .zip(&makers)
        .map(|((task, jobs), make)| Sink {
            raw_path: raw_path(cfg, task),
            jobs,
            make: make.as_ref(),
            what: task.name.clone(),
        })
        .collect();
    let counts = if generate {
        generate_sinks(&sinks, &gen, log)?
    } else {
        vec![(0, 0); sinks.len()]
    };
    let mut out = Vec::new();
    for ((task, jobs), (n, toks)) in cfg.tasks.iter().zip(&all_jobs).zip(counts) {
        out.push(finish_task(
            cfg,
            task,
            jobs,
            (n, toks),
            start,
            generate,
            log,
        )?);
    }
    Ok(out)
}

/// Round-robin over the sources: passage 0 of each source, then passage 1 of each, …, so
/// that every prefix of the prompt list (a task's `max_records`, a run stopped early)
/// draws on every source in proportion.
pub fn interleave<T>(per_source: Vec<Vec<T>>) -> Vec<T> {
    let total = per_source.iter().map(Vec::len).sum();
    let mut iters: Vec<std::vec::IntoIter<T>> =
        per_source.into_iter().map(Vec::into_iter).collect();
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        for it in iters.iter_mut() {
            if let Some(x) = it.next() {
                out.push(x);
            }
        }
    }
    out
}

fn raw_path(cfg: &SynthConfig, task: &TaskConfig) -> PathBuf {
    cfg.work_dir.join(format!("{}.raw.jsonl", task.name))
}

fn record_maker<'a>(
    cfg: &'a SynthConfig,
    task: &'a TaskConfig,
    tmpl: &'a Template,
    gen: &'a LoadedGenerator,
) -> Box<MakeRecord<'a>> {
    Box::new(move |c: &Completion, job: &Job, text: String| Record {
        id: c.id.clone(),
        text,
        kind: task.kind.clone(),
        task: task.name.clone(),
        sources: job.sources.clone(),
        generator: gen.id.clone(),
        template_sha256: tmpl.sha256.clone(),
        sampling: sampling_record(&cfg.sampling, job),
        seed: cfg.sampling.seed,
        finish: c.finish,
        prompt_tokens: c.prompt_tokens,
        generated_tokens: c.tokens.len(),
    })
}

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

fn load_task_templates(t: &TaskConfig) -> Result<(Template, Option<Template>)> {
    let (allowed, required): (&[&str], &[&str]) = match t.method {
        Method::Passage => (&["passage"], &["passage"]),
        Method::Level2 => (&["passage", "concepts"], &["concepts"]),
        Method::Level3 => (&["passage", "concepts", "topics"], &["concepts"]),
    };
    let main = Template::load(&t.template, allowed, required)?;
    let extract = match &t.extract_template {
        Some(p) => Some(Template::load(p, &["passage"], &["passage"])?),
        None => None,
    };
    Ok((main, extract))
}

/// Builds a job: `tmpl` filled with `values`, in the generator's chat format, followed by
/// the template's response prefix.
pub fn make_job(
    gen: &LoadedGenerator,
    tmpl: &Template,
    id: String,
    sources: Vec<String>,
    values: &BTreeMap<&str, String>,
) -> Result<Job> {
    let (system, user) = tmpl.render(values);
    let mut text = gen.format.render(&system, &user);
    text.push_str(&tmpl.response_prefix);
    let prompt = gen.generator.tokenizer.encode(&text)?;
    Ok(Job {
        id,
        sources,
        user,
        prompt,
        prefix: tmpl.response_prefix.clone(),
        max_new_tokens: tmpl.max_new_tokens,
    })
}

fn task_jobs(
    cfg: &SynthConfig,
    task: &TaskConfig,
    tmpl: &Template,
    extract: Option<&Template>,
    gen: &LoadedGenerator,
    passages: &[Passage],
    log: Log,
) -> Result<Vec<Job>> {
    let mut jobs: Vec<Job> = match task.method {
        Method::Passage => passages
            .iter()
            .map(|p| {
                let mut v = BTreeMap::new();
                v.insert("passage", p.text.clone());
                make_job(
                    gen,
                    tmpl,
                    format!("{}/{}", task.name, p.id),
                    vec![p.id.clone()],
                    &v,
                )
            })
            .collect::<Result<_>>()?,
        Method::Level2 | Method::Level3 => {
            let extract = extract.expect("validated: levels 2 and 3 have an extraction template");
            let extractions = synthllm::extract_all(cfg, task, extract, gen, passages, log)?;
            synthllm::jobs(cfg, task, tmpl, gen, passages, &extractions, log)?
        }
    };
    if let Some(k) = task.max_records {
        jobs.truncate(k);
    }
    Ok(jobs)
}

fn finish_task(
    cfg: &SynthConfig,
    task: &TaskConfig,
    jobs: &[Job],
    (generated_now, tokens_now): (usize, u64),
    start: std::time::Instant,
    repair: bool,
    log: Log,
) -> Result<TaskSummary> {
    // Filter in prompt order (not completion order), so the result does not depend on
    // batching or on where a run was resumed.
    let records: HashMap<String, Record> = read_raw_opt(&raw_path(cfg, task), repair)?
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    let mut filter = Filter::new(cfg.filter.clone());
    let mut kept = Vec::new();
    for job in jobs {
        if let Some(r) = records.get(&job.id) {
            if filter.check(&r.text, &job.user).is_none() {
                kept.push(r);
            }
        }
    }
    write_output(&task.output, &kept)?;
    let summary = TaskSummary {
        task: task.name.clone(),
        kind: task.kind.clone(),
        output: task.output.clone(),
        prompts: jobs.len(),
        generated_now,
        generated_tokens_now: tokens_now,
        filter: filter.summary,
        seconds: start.elapsed().as_secs_f64(),
    };
    let sp = cfg.work_dir.join(format!("{}.summary.json", task.name));
    std::fs::write(
        &sp,
        serde_json::to_string_pretty(&summary).expect("serializable") + "\n",
    )
    .map_err(SynthError::io(&sp))?;
    log(&format!(
        "task {}: {} prompts, {} records kept of {} ({:?} dropped) → {}",
        task.name,
        jobs.len(),
        summary.filter.kept,
        summary.filter.seen,
        summary.filter.dropped,
        task.output.display()
    ));
    Ok(summary)
}

/// One task's share of a generation run: its prompts, its raw file, how to make records.
pub struct Sink<'a> {
    pub raw_path: PathBuf,
    pub jobs: &'a [Job],
    pub make: &'a MakeRecord<'a>,
    pub what: String,
}

/// Generates every job whose id is not yet in `raw_path`, appending records as they finish.
/// Refuses a raw file made with another generator, template or sampling (mixing them would
/// make the corpus unreproducible). Returns (records, tokens) generated now.
pub fn generate_jobs(
    raw_path: &Path,
    jobs: &[Job],
    gen: &LoadedGenerator,
    make: &MakeRecord<'_>,
    log: Log,
    what: &str,
) -> Result<(usize, u64)> {
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

/// [`generate_jobs`] for several tasks at once: their prompts are merged into one queue in
/// proportion to each task's count ([`proportional_order`]), so every task advances at its
/// own rate and the batch stays full.
pub fn generate_sinks(
    sinks: &[Sink],
    gen: &LoadedGenerator,
    log: Log,
) -> Result<Vec<(usize, u64)>> {
    let mut todos: Vec<Vec<&Job>> = Vec::new();
    let mut owner: HashMap<&str, (usize, &Job)> = HashMap::new();
    for (si, sink) in sinks.iter().enumerate() {
        let existing = read_raw(&sink.raw_path)?;
        let by_id: HashMap<&str, &Job> = sink.jobs.iter().map(|j| (j.id.as_str(), j)).collect();
        let mut done = std::collections::HashSet::new();
        for r in &existing {
            if let Some(job) = by_id.get(r.id.as_str()) {
                let probe = (sink.make)(
                    &Completion {
                        id: r.id.clone(),
                        tokens: Vec::new(),
                        finish: r.finish,
                        prompt_tokens: r.prompt_tokens,
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
        let todo: Vec<&Job> = sink.jobs.iter().filter(|j| !done.contains(&j.id)).collect();
        log(&format!(
            "{}: {} prompts, {} done before, {} to generate",
            sink.what,
            sink.jobs.len(),
            sink.jobs.len() - todo.len(),
            todo.len()
        ));
        for j in &todo {
            owner.insert(j.id.as_str(), (si, j));
        }
        todos.push(todo);
    }
    let requests: Vec<Request> = proportional_order(&todos)
        .into_iter()
        .map(|(t, i)| {
            let j = todos[t][i];
            Request {
                id: j.id.clone(),
                prompt: j.prompt.clone(),
                max_new_tokens: j.max_new_tokens,
            }
        })
        .collect();
    let mut counts = vec![(0usize, 0u64); sinks.len()];
    if requests.is_empty() {
        return Ok(counts);
    }
    let mut writers: Vec<Option<BufWriter<File>>> = (0..sinks.len()).map(|_| None).collect();
    let total = requests.len();
    let mut n = 0usize;
    let mut tokens = 0u64;
    let t0 = std::time::Instant::now();
    gen.generator.generate(requests, |c| {
        let (si, job) = owner[c.id.as_str()];
        let sink = &sinks[si];
        let text = format!(
            "{}{}",
            job.prefix,
            gen.generator.tokenizer.decode(&c.tokens)?
        )
        .trim()
        .to_string();
        let rec = (sink.make)(&c, job, text);
        let mut line = serde_json::to_string(&rec).expect("serializable");
        line.push('\n');
        if writers[si].is_none() {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&sink.raw_path)
                .map_err(SynthError::io(&sink.raw_path))?;
            writers[si] = Some(BufWriter::new(file));
        }
        let w = writers[si].as_mut().expect("opened");
        w.write_all(line.as_bytes())
            .and_then(|_| w.flush())
            .map_err(SynthError::io(&sink.raw_path))?;
        n += 1;
        tokens += c.tokens.len() as u64;
        counts[si].0 += 1;
        counts[si].1 += c.tokens.len() as u64;
        if n % 10 == 0 || n == total {
            let dt = t0.elapsed().as_secs_f64();
            log(&format!(
                "{n}/{total} records, {tokens} tokens, {:.1} tokens/s",
                tokens as f64 / dt.max(1e-9)
            ));
        }
        Ok(true)
    })?;
    Ok(counts)
}

/// Writes records as JSONL (gzip when the name ends in `.gz`) through a temporary file
/// renamed into place.
pub fn write_output(path: &Path, records: &[&Record]) -> Result<()> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(SynthError::io(dir))?;
        }
    }
    let tmp = PathBuf::from(format!("{}.tmp-{}", path.display(), std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let file = File::create(&tmp)?;
        let gz = path.extension().is_some_and(|e| e == "gz");
        let mut w: Box<dyn Write> = if gz {
            Box::new(flate2::write::GzEncoder::new(
                BufWriter::new(file),
                flate2::Compression::best(),
            ))
        } else {
            Box::new(BufWriter::new(file))
        };
        for r in records {
            serde_json::to_writer(&mut w, r)?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
        drop(w);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(SynthError::io(path))
}

#[cfg(test)]
mod tests {
    use super::interleave;

    #[test]
    fn interleave_takes_sources_in_turn_and_keeps_every_item() {
        let a = vec!["a0", "a1", "a2", "a3"];
        let b = vec!["b0"];
        let c = vec!["c0", "c1"];
        let out = interleave(vec![a, b, c, vec![]]);
        assert_eq!(out, ["a0", "b0", "c0", "a1", "c1", "a2", "a3"]);
        // A prefix as long as the number of sources holds one item of each non-empty one.
        assert_eq!(&out[..3], ["a0", "b0", "c0"]);
        assert!(interleave::<u8>(vec![]).is_empty());
    }

    #[test]
    fn proportional_order_keeps_every_prefix_in_proportion() {
        use super::proportional_order;
        // 1200 textbook prompts against 600 + 600 rephrase prompts (the quickstart's caps).
        let qs = vec![vec![(); 1200], vec![(); 600], vec![(); 600]];
        let order = proportional_order(&qs);
        assert_eq!(order.len(), 2400);
        // Each queue's items keep their order and all appear once.
        for (q, items) in qs.iter().enumerate() {
            let idx: Vec<usize> = order.iter().filter(|x| x.0 == q).map(|x| x.1).collect();
            assert_eq!(idx, (0..items.len()).collect::<Vec<_>>());
        }
        // In every prefix, the first queue holds half the items, within one.
        let mut first = 0usize;
        for (k, &(q, _)) in order.iter().enumerate() {
            first += (q == 0) as usize;
            let want = (k + 1) as f64 / 2.0;
            assert!(
                (first as f64 - want).abs() <= 1.0,
                "prefix {}: {first}",
                k + 1
            );
        }
    }
}
