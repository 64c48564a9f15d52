//! The embedding lookup with a backward pass that accumulates in f32: CPU in f32, CUDA in
//! bf16 (candle's gather forward, `kernels/src/embedding.cu` backward).
//!
//! candle's `index_select` differentiates to `index_add`, which on CUDA runs in one block,
//! serially over all tokens, accumulating in the table's dtype (bf16 under mixed
//! precision). Here every token row is added by its own block with f32 atomics, and the
//! sum is rounded to the table's dtype once.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::cpu::{f32_slice, u32_slice};

/// Rows `ids` (`[n]` u32) of `table` (`[v, d]`): `[n, d]`.
pub fn embedding(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    table.contiguous()?.apply_op2(&ids.contiguous()?, Embedding)
}

struct Embedding;

fn check_ids(ids: &[u32], v: usize) -> Result<()> {
    if let Some(&bad) = ids.iter().find(|&&i| i as usize >= v) {
        candle_core::bail!("embedding: token id {bad} outside the vocabulary of {v}");
    }
    Ok(())
}

impl CustomOp2 for Embedding {
    fn name(&self) -> &'static str {
        "synthscale-embedding"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (v, d) = l1.shape().dims2()?;
        let table = f32_slice(s1, l1, "embedding")?;
        let ids = u32_slice(s2, l2, "embedding")?;
        check_ids(ids, v)?;
        let mut out = Vec::with_capacity(ids.len() * d);
        for &i in ids {
            out.extend_from_slice(&table[i as usize * d..][..d]);
        }
        Ok((CpuStorage::F32(out), Shape::from((ids.len(), d))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use candle_core::backend::BackendStorage;
        let (_, d) = l1.shape().dims2()?;
        let n = l2.shape().elem_count();
        Ok((s1.index_select(s2, l1, l2, 0)?, Shape::from((n, d))))
    }

    fn bwd(
        &self,
        table: &Tensor,
        ids: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        #[cfg(feature = "cuda")]
        if table.device().is_cuda() {
            let dw = cuda_bwd(table, ids, &grad)?;
            return Ok((Some(dw.to_dtype(table.dtype())?), None));
        }
        let (v, d) = table.dims2()?;
        let (gs, gl) = grad.storage_and_layout();
        let (is, il) = ids.storage_and_layout();
        let (candle_core::Storage::Cpu(gs), candle_core::Storage::Cpu(is)) = (&*gs, &*is) else {
            candle_core::bail!("embedding backward: gradient and ids must be on the CPU")
        };
        let g = f32_slice(gs, gl, "embedding backward")?;
        let ids = u32_slice(is, il, "embedding backward")?;
        let mut dw = vec![0f32; v * d];
        for (row, &i) in g.chunks_exact(d).zip(ids) {
            for (a, b) in dw[i as usize * d..][..d].iter_mut().zip(row) {
                *a += b;
            }
        }
        Ok((Some(Tensor::from_vec(dw, (v, d), table.device())?), None))
    }
}

/// dW `[v, d]` f32: one block per token row adds the row's gradient with f32 atomics.
#[cfg(feature = "cuda")]
fn cuda_bwd(table: &Tensor, ids: &Tensor, g: &Tensor) -> Result<Tensor> {
    use super::cuda::{launch, tensor, view};
    use candle_core::Storage;
    let (v, d) = table.dims2()?;
    let (gs, gl) = g.storage_and_layout();
    let (is, il) = ids.storage_and_layout();
    let (Storage::Cuda(gs), Storage::Cuda(is)) = (&*gs, &*is) else {
        candle_core::bail!("embedding backward: gradient and ids must be on one CUDA device")
    };
    let dev = &gs.device;
    let gv = view::<half::bf16>(gs, gl, "embedding backward")?;
    let iv = view::<u32>(is, il, "embedding backward")?;
    let n = iv.len();
    // The forward pass's gather has read these ids; the kernel skips any ≥ v.
    let mut dw = dev.alloc_zeros::<f32>(v * d)?;
    if let Some(l) = super::dispatch::embedding_bwd(n, d)? {
        launch!(dev, "embedding_bwd_bf16", l;
            &iv, &gv, &mut dw, &(n as i32), &(d as i32), &(v as i32));
    }
    Ok(tensor(dw, dev, (v, d)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{max_diff, rand};
    use candle_core::{Device, Var};

    // Oracle: candle's index_select, differentiated by candle's autograd (index_add).

    #[test]
    fn embedding_matches_index_select_with_repeated_ids() {
        let table = Var::from_tensor(&rand(&[11, 6], 3)).unwrap();
        let ids = Tensor::from_vec(vec![3u32, 0, 3, 10, 7, 3, 0], 7, &Device::Cpu).unwrap();
        let fused = embedding(table.as_tensor(), &ids).unwrap();
        let reference = table.as_tensor().index_select(&ids, 0).unwrap();
        assert_eq!(max_diff(&fused, &reference), 0.0);
        let k = rand(&[7, 6], 4);
        let g1 = (fused * &k).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (reference * &k)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let (a, r) = (
            g1.get(table.as_tensor()).unwrap(),
            g2.get(table.as_tensor()).unwrap(),
        );
        assert!(max_diff(a, r) < 1e-6);
        assert!(max_diff(r, &r.zeros_like().unwrap()) > 1e-3);
    }

    #[test]
    fn an_id_outside_the_vocabulary_is_refused() {
        let table = rand(&[4, 2], 5);
        let ids = Tensor::from_vec(vec![1u32, 4], 2, &Device::Cpu).unwrap();
        let e = embedding(&table, &ids).unwrap_err().to_string();
        assert!(e.contains("token id 4 outside the vocabulary of 4"), "{e}");
    }
}
