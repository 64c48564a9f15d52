//! What the fused ops' CUDA paths share: loading a kernel of `synthscale-kernels` by name,
//! contiguous bf16/f32 views of storages, and tensors around new device buffers.
//!
//! Every launch takes its grid, block and shared memory from `ops::dispatch`, which the CPU
//! tests check against the kernels' documented contracts.

use candle_core::backend::BackendStorage;
use candle_core::cuda::cudarc::driver::sys::CUfunction_attribute;
use candle_core::cuda::cudarc::driver::{CudaFunction, CudaSlice, CudaView, LaunchConfig};
use candle_core::cuda::CudaDType;
pub(super) use candle_core::cuda::WrapErr;
use candle_core::op::BackpropOp;
use candle_core::{CudaDevice, CudaStorage, Layout, Result, Shape, Storage, Tensor, WithDType};
use half::bf16;

use super::dispatch::Launch;

/// Above this, a kernel must raise its `MAX_DYNAMIC_SHARED_SIZE_BYTES` before launch.
const DEFAULT_SHARED_LIMIT: u32 = 48 * 1024;

/// The `extern "C"` function `name` of `synthscale-kernels`, loaded once per device (its
/// module is registered as `synthscale_<module>`, apart from candle's own kernels), with
/// its dynamic shared-memory limit raised to what `launch` asks for.
pub(super) fn function(dev: &CudaDevice, name: &str, launch: &Launch) -> Result<CudaFunction> {
    let Some(kernel) = synthscale_kernels::kernel(name) else {
        candle_core::bail!("no kernel {name} in synthscale-kernels")
    };
    let Some(ptx) = synthscale_kernels::ptx(kernel.module) else {
        candle_core::bail!("no PTX module {} in synthscale-kernels", kernel.module)
    };
    let f = dev
        .get_or_load_custom_func(name, &format!("synthscale_{}", kernel.module), ptx)?
        .into_cuda_function();
    if launch.shared_bytes > DEFAULT_SHARED_LIMIT {
        f.set_attribute(
            CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
            launch.shared_bytes as i32,
        )
        .w()?;
    }
    Ok(f)
}

pub(super) fn config(l: &Launch) -> LaunchConfig {
    LaunchConfig {
        grid_dim: l.grid,
        block_dim: l.block,
        shared_mem_bytes: l.shared_bytes,
    }
}

/// The contiguous elements of a storage as `T`; an error naming `what` when the dtype or
/// the layout is not what the kernel takes.
pub(super) fn view<'a, T: CudaDType + WithDType>(
    s: &'a CudaStorage,
    l: &Layout,
    what: &str,
) -> Result<CudaView<'a, T>> {
    let v = s.as_cuda_slice::<T>().map_err(|_| {
        candle_core::Error::Msg(format!(
            "{what}: the CUDA kernel takes {:?} input, not {:?}",
            T::DTYPE,
            s.dtype()
        ))
    })?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(v.slice(a..b)),
        None => candle_core::bail!("{what}: input must be contiguous"),
    }
}

/// A bf16 [`view`] starting on a 16-byte boundary, as the tensor-core kernels' vector loads
/// need.
pub(super) fn aligned_bf16_view<'a>(
    s: &'a CudaStorage,
    l: &Layout,
    what: &str,
) -> Result<CudaView<'a, bf16>> {
    if (l.start_offset() * 2) % 16 != 0 {
        candle_core::bail!(
            "{what}: input starts {} elements into its buffer, not on a 16-byte boundary",
            l.start_offset()
        );
    }
    view(s, l, what)
}

/// A new buffer as a storage of the same device.
pub(super) fn storage<T: CudaDType>(slice: CudaSlice<T>, dev: &CudaDevice) -> CudaStorage {
    CudaStorage::wrap_cuda_slice(slice, dev.clone())
}

/// A new buffer as a tensor without a graph (a gradient).
pub(super) fn tensor<T: CudaDType>(
    slice: CudaSlice<T>,
    dev: &CudaDevice,
    shape: impl Into<Shape>,
) -> Tensor {
    Tensor::from_storage(
        Storage::Cuda(storage(slice, dev)),
        shape,
        BackpropOp::none(),
        false,
    )
}

/// `launch!(dev, "kernel", launch; &arg, …)`: loads the kernel and launches it on the
/// device's stream with the arguments in the order its `.cu` file documents (scalars typed
/// as there: `int` as i32, `unsigned long long` as u64, `float` as f32).
macro_rules! launch {
    ($dev:expr, $name:expr, $launch:expr; $($arg:expr),* $(,)?) => {{
        use candle_core::cuda::cudarc::driver::PushKernelArg;
        use candle_core::cuda::WrapErr;
        let launch: $crate::ops::dispatch::Launch = $launch;
        let f = $crate::ops::cuda::function($dev, $name, &launch)?;
        let stream = $dev.cuda_stream();
        let mut b = stream.launch_builder(&f);
        // Each argument bound first, so a temporary like `&(n as i32)` lives to the launch.
        $( let arg = $arg; b.arg(arg); )*
        // SAFETY: the arguments are those the kernel's documentation lists, in its order
        // and types, sized by the caller for the launch's shape.
        unsafe { b.launch($crate::ops::cuda::config(&launch)) }.w()?;
    }};
}
pub(super) use launch;
