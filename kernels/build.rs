//! Compiles every `src/*.cu` to PTX in `OUT_DIR` when the `cuda` feature is on (nvcc from
//! `PATH` or `CUDA_HOME`, target from `CUDA_COMPUTE_CAP`, default 90 → sm_90a); without
//! the feature it does nothing and needs no CUDA toolkit.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    #[cfg(feature = "cuda")]
    ptx::build();
}

#[cfg(feature = "cuda")]
mod ptx {
    use cudaforge::KernelBuilder;

    pub fn build() {
        let mut builder = KernelBuilder::new()
            .source_dir("src")
            // The shared header: a change to it recompiles every kernel.
            .watch(["src/common.cuh"])
            .args(["-O3", "-std=c++17", "--expt-relaxed-constexpr"]);
        if std::env::var_os("CUDA_COMPUTE_CAP").is_none() {
            // No GPU to ask at build time (REFERENCE §5): H100/H200 unless told otherwise.
            builder = builder.compute_cap(90);
        }
        if let Err(e) = builder.build_ptx() {
            panic!("synthscale-kernels: compiling the CUDA kernels to PTX failed: {e}");
        }
    }
}
