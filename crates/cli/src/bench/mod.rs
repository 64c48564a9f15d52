//! `synthscale bench …`: throughput figures as one JSON line.
//!
//! - `device_args`: the device and compute dtype a bench runs on;
//! - `shape`: the decoder shape a bench builds, and its random tokens;
//! - `data`: tokenization, `data prepare` and the mixture sampler;
//! - `train`: training steps of a decoder on random tokens;
//! - `gpu_check`: a device against the CPU, a few AdamW steps;
//! - `fit`, `synth`, `memory`, `kernels`: the fitter, generation, the memory model
//!   and the fused ops.

mod data;
mod device_args;
mod fit;
mod gpu_check;
mod kernels;
mod memory;
mod shape;
mod synth;
mod train;

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Tokenization (MB/s, tokens/s, on all cores and on one), `data prepare` end to end,
    /// and the mixture sampler (tokens/s), on a manifest's sources.
    Data(data::BenchDataArgs),
    /// Training steps (forward, backward, AdamW) of a decoder of the given shape on random
    /// tokens: tokens/s, step time, MFU, peak memory.
    Train(train::BenchTrainArgs),
    /// The scaling-law fitter: Epoch AI's Chinchilla fit (240 points, 4500 L-BFGS starts),
    /// timed on all threads and on one.
    Fit(fit::BenchFitArgs),
    /// Generation: generated tokens/s of the batched decoder at each batch size, and of
    /// candle-transformers' quantized Llama at batch 1 (the peer).
    Synth(synth::BenchSynthArgs),
    /// Checks a device against the CPU: the same model and batch, a few AdamW steps, the
    /// losses compared within the compute dtype's tolerance. Exit code 1 when they differ.
    GpuCheck(gpu_check::GpuCheckArgs),
    /// The memory model against the measured peak of the heap, on the CPU, for the fused
    /// f32 graph and the composed bf16 graph (the oracle form; the CUDA kernels' graph runs
    /// on a GPU only) at several shapes; one JSON line per case, exit code 1 when one is off
    /// by more than the tolerance.
    Memory(memory::BenchMemoryArgs),
    /// Every fused op (embedding, RMSNorm, SwiGLU, rotary positions, attention at head
    /// dimensions 64 and 128, the classifier) on a device against its composed oracle in f32
    /// on the CPU, values and gradients: on CUDA the bf16 kernels, on the CPU the f32 ops.
    /// One JSON line per op; exit code 1 when one is outside its dtype's tolerance.
    Kernels(kernels::BenchKernelsArgs),
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Data(a) => data::run(&a),
        BenchCommand::Train(a) => train::run(&a),
        BenchCommand::Fit(a) => fit::run(&a),
        BenchCommand::Synth(a) => synth::run(&a),
        BenchCommand::GpuCheck(a) => gpu_check::run(&a),
        BenchCommand::Memory(a) => memory::run(&a),
        BenchCommand::Kernels(a) => kernels::run_cmd(&a),
    }
}
