//! The `synthscale` binary: argument parsing and glue between the stage crates.

mod bench;
mod data_cmd;
mod fit_cmd;
mod heap;
mod manifest;
mod report_cmd;
mod run_cmd;
mod sweep_cmd;
mod synth_cmd;
mod train_cmd;
mod util;

#[global_allocator]
static GLOBAL: heap::Counting = heap::Counting;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Scaling-law studies of synthetic pre-training data.
///
/// Exit codes: 0 success, 2 bad input (the message names the file, field and bound),
/// 1 internal failure; `train` also exits 75 when stopped by a signal (relaunch to resume)
/// and 73 when another live process holds its run directory.
#[derive(Parser, Debug)]
#[command(name = "synthscale", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The main job: prepare the data, train the sweep locally, collect the results, fit
    /// the laws and write the report; finished stages are skipped.
    Run(run_cmd::RunArgs),
    /// Prepare and inspect tokenized data: corpora → token shards → mixtures.
    #[command(subcommand)]
    Data(data_cmd::DataCommand),
    /// Generate synthetic corpora (rephrased, textbook, SynthLLM) with a local generator LM
    /// or an OpenAI-compatible inference server (vLLM, SGLang, llama.cpp).
    Synth(synth_cmd::SynthArgs),
    /// Train one model on one mixture, resumably.
    ///
    /// Writes `config.toml` (resolved), `metrics.jsonl`, `checkpoint/` and `DONE` in the run
    /// directory; relaunching resumes from the last checkpoint with exactly the metrics of an
    /// uninterrupted run. SIGTERM, SIGUSR1 or SIGINT checkpoint at the next step and exit 75.
    /// One process trains a run directory at a time: it holds an OS lock on `run.lock` there
    /// for as long as it lives, and a second `train` of the directory exits 73 naming the
    /// holder.
    ///
    /// Exit codes: 0 done (or already done), 75 stopped to be resumed, 73 the run directory
    /// is in use by another live process (nothing was done), 2 bad config, 1 failure.
    Train(train_cmd::TrainArgs),
    /// Plan, launch, watch and collect a sweep of runs (sizes × budgets × mixtures ×
    /// seeds), locally or as a Slurm job array.
    #[command(subcommand)]
    Sweep(sweep_cmd::SweepCommand),
    /// Export a run's checkpoint in Hugging Face's Llama layout.
    Export(train_cmd::ExportArgs),
    /// Fit a scaling law (rectified, power, chinchilla) to logged losses, with intervals,
    /// a held-out check and derived answers.
    Fit(Box<fit_cmd::FitArgs>),
    /// Fit, plot and write up a results table: self-contained HTML, Markdown, fit JSON and
    /// six figures (PNG and SVG).
    Report(report_cmd::ReportArgs),
    /// Measure throughput; prints one JSON line of figures.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Print a shell completion script: `synthscale completions bash >
    /// ~/.local/share/bash-completion/completions/synthscale` (zsh: a file `_synthscale` on
    /// $fpath; fish: ~/.config/fish/completions/synthscale.fish).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `synthscale man > ~/.local/share/man/man1/synthscale.1`;
    /// with `--dir DIR`, write synthscale.1 and one page per subcommand
    /// (synthscale-sweep-plan.1, …) there instead.
    Man {
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
}

/// Writes `cmd`'s page as `<dir>/<display name>.1` and recurses into its subcommands
/// (`cmd` built, so that a subcommand's display name is `synthscale-sweep-plan`).
fn write_man_pages(cmd: &clap::Command, dir: &std::path::Path) -> anyhow::Result<()> {
    let name = cmd.get_display_name().unwrap_or(cmd.get_name());
    let path = dir.join(format!("{name}.1"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
    std::fs::write(&path, buf).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        write_man_pages(sub, dir)?;
    }
    Ok(())
}

/// mimalloc's `mi_option_purge_delay` (index 15 of `mi_option_e` in mimalloc 2 and 3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // Keep freed memory instead of returning it to the OS after 10 ms: training frees and
    // re-allocates the same large buffers every step, and re-mapping them costs a page
    // zeroing each time (28% of a training step's samples under `perf` before this).
    // SAFETY: sets a process-wide allocator option before any thread starts.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    // candle's elementwise thread pool spins 25,000 times before parking; between its ops
    // the matrix multiplies run on rayon's threads, which the spinning worker then competes
    // with for the same cores. 1,000 spins measured 15–20% faster training steps on 2 cores
    // (docs/performance.md). An explicit setting in the environment wins.
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        // SAFETY (edition 2021: safe): no other thread exists yet.
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", "1000");
    }
    quiet_on_closed_pipe();
    match run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", util::error_text(&err));
            ExitCode::from(util::exit_code(&err))
        }
    }
}

/// Output piped into a reader that stops early (`synthscale sweep status | head`) ends the
/// process quietly with exit 0, as `ls | head` does, instead of a panic: Rust ignores
/// SIGPIPE, so the standard library's print macros panic on the closed pipe.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.starts_with("failed printing to stdout") && text.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info)
    }));
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(a) => run_cmd::run(&a),
        Command::Data(cmd) => data_cmd::run(cmd),
        Command::Synth(a) => synth_cmd::run(&a),
        Command::Train(a) => train_cmd::run_train(&a),
        Command::Sweep(cmd) => sweep_cmd::run(cmd),
        Command::Export(a) => train_cmd::run_export(&a),
        Command::Fit(args) => fit_cmd::run(*args),
        Command::Report(a) => report_cmd::run(a),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "synthscale", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            match dir {
                None => {
                    // Through print!, so that a closed pipe ends quietly like every listing.
                    let mut buf = Vec::new();
                    clap_mangen::Man::new(cmd).render(&mut buf)?;
                    print!("{}", String::from_utf8_lossy(&buf));
                }
                Some(d) => {
                    std::fs::create_dir_all(&d)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", d.display()))?;
                    cmd.build();
                    write_man_pages(&cmd, &d)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
