//! The decode step's weight products: one matrix × vector for any storage
//! of a linear layer, and several matrices reading the same vector in one
//! parallel region.

use candle_core::{CpuStorage, Device, Result, Storage, Tensor};
use rayon::prelude::*;

use super::super::matvec::{self, Weights, chunk_rows, matvec, rows_into};
use super::super::ops::Lin;
use super::super::q4::{MATVEC_CHUNK, Q4Matrix, quantize_act};
use super::super::q8::Q8Matrix;

/// A contiguous CPU tensor's elements in their stored type.
pub(super) fn with_weights<R>(t: &Tensor, f: impl FnOnce(Weights) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let (a, b) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("fused decode: weight not contiguous".into()))?;
    Ok(match &*storage {
        Storage::Cpu(CpuStorage::F16(v)) => f(Weights::F16(&v[a..b])),
        Storage::Cpu(CpuStorage::BF16(v)) => f(Weights::Bf16(&v[a..b])),
        Storage::Cpu(CpuStorage::F32(v)) => f(Weights::F32(&v[a..b])),
        _ => {
            return Err(candle_core::Error::Msg(format!(
                "fused decode: {:?} weight on {:?}",
                t.dtype(),
                t.device()
            )));
        }
    })
}

/// y = W·x for a linear layer of any storage.
pub(super) fn lin_matvec(lin: &Lin, x: &[f32], y: &mut [f32]) -> Result<()> {
    match lin {
        Lin::Dense(w) => with_weights(w, |w| matvec(w, x.len(), x, y)),
        Lin::Q4(q) => {
            q.matvec(x, y);
            Ok(())
        }
        Lin::Q8(q) => {
            q.matvec(x, y);
            Ok(())
        }
        Lin::Quant(_) | Lin::QuantRows(_) => {
            let xt = Tensor::from_slice(x, (1, x.len()), &Device::Cpu)?;
            let out: Vec<f32> = lin.forward(&xt)?.flatten_all()?.to_vec1()?;
            y.copy_from_slice(&out);
            Ok(())
        }
    }
}

/// One matrix of `lin_matvec_many`, borrowed for its parallel region.
#[derive(Clone, Copy)]
enum Job<'a> {
    Dense(Weights<'a>),
    Q4(&'a Q4Matrix),
    Q8(&'a Q8Matrix),
}

/// ys[i] = W_i·x for linear layers that read the same x (q, k and v; gate
/// and up), in one parallel region: one rayon fork-join and one q8_0
/// quantization of x for all of them, where `lin_matvec` pays each per
/// matrix — a hand-off of 20-35 µs measured on 2 threads, about 150 times
/// a token on the 1.1B shape (docs/peers.md). Every row is computed as
/// `lin_matvec` computes it, on the same rows per task: the same bits.
pub(super) fn lin_matvec_many(lins: &[&Lin], x: &[f32], ys: &mut [&mut [f32]]) -> Result<()> {
    assert_eq!(lins.len(), ys.len(), "one output per matrix");
    if lins
        .iter()
        .any(|l| matches!(l, Lin::Quant(_) | Lin::QuantRows(_)))
    {
        // candle's quantized products run their own parallelism.
        for (lin, y) in lins.iter().zip(ys.iter_mut()) {
            lin_matvec(lin, x, y)?;
        }
        return Ok(());
    }
    with_jobs(lins, Vec::with_capacity(lins.len()), |jobs| {
        run_jobs(jobs, x, ys)
    })
}

/// Borrows every matrix's storage (a dense tensor's through its storage
/// guard, held while `f` runs) and hands them to `f` together.
fn with_jobs<'a, R>(
    lins: &[&'a Lin],
    mut done: Vec<Job<'a>>,
    f: impl FnOnce(&[Job<'_>]) -> R,
) -> Result<R> {
    let Some((first, rest)) = lins.split_first() else {
        return Ok(f(&done));
    };
    match first {
        Lin::Dense(t) => with_weights(t, move |w| {
            let mut done: Vec<Job<'_>> = done;
            done.push(Job::Dense(w));
            with_jobs(rest, done, f)
        })?,
        Lin::Q4(q) => {
            done.push(Job::Q4(q));
            with_jobs(rest, done, f)
        }
        Lin::Q8(q) => {
            done.push(Job::Q8(q));
            with_jobs(rest, done, f)
        }
        Lin::Quant(_) | Lin::QuantRows(_) => unreachable!("handled by the caller"),
    }
}

fn run_jobs(jobs: &[Job], x: &[f32], ys: &mut [&mut [f32]]) {
    let quantized = jobs.iter().any(|j| !matches!(j, Job::Dense(_)));
    let acts = quantized.then(|| quantize_act(x));
    let (p, cols) = (matvec::path(), x.len());
    let mut tasks = Vec::new();
    for (job, y) in jobs.iter().zip(ys.iter_mut()) {
        let chunk = match job {
            Job::Dense(_) => chunk_rows(y.len()),
            Job::Q4(_) | Job::Q8(_) => MATVEC_CHUNK,
        };
        for (i, c) in y.chunks_mut(chunk).enumerate() {
            tasks.push((*job, i * chunk, c));
        }
    }
    tasks.into_par_iter().for_each(|(job, r0, ys)| match job {
        Job::Dense(w) => rows_into(p, w, cols, x, r0, ys),
        Job::Q4(q) => q.rows_into(acts.as_ref().expect("quantized").row(0), r0, ys),
        Job::Q8(q) => q.rows_into(acts.as_ref().expect("quantized").row(0), r0, ys),
    });
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use candle_core::DType;

    use super::*;

    /// Several matrices in one region give each the bits `lin_matvec`
    /// gives it alone: dense f32/f16/bf16 (one wider than the four-row
    /// threshold), q4_0 and q8_0, mixed in one call, ragged row counts.
    #[test]
    fn many_matrices_give_the_bits_of_one_at_a_time() {
        let cols = 4096 + 64;
        let fill = |rows: usize, s: usize| -> Vec<f32> {
            (0..rows * cols)
                .map(|i| (((i + s) * 2654435761) % 2001) as f32 / 1000.0 - 1.0)
                .collect()
        };
        let dense = |rows: usize, s: usize, dt: DType| {
            let t = Tensor::from_vec(fill(rows, s), (rows, cols), &Device::Cpu).unwrap();
            Lin::Dense(t.to_dtype(dt).unwrap())
        };
        let lins = [
            dense(300, 1, DType::F32),
            dense(70, 2, DType::F16),
            dense(9, 3, DType::BF16),
            Lin::Q4(Arc::new(
                Q4Matrix::quantize(&fill(133, 4), 133, cols).unwrap(),
            )),
            Lin::Q8(Arc::new(
                Q8Matrix::quantize(&fill(65, 5), 65, cols).unwrap(),
            )),
        ];
        let x: Vec<f32> = (0..cols).map(|i| (i % 13) as f32 / 6.0 - 1.0).collect();
        let rows = [300, 70, 9, 133, 65];
        let alone: Vec<Vec<f32>> = lins
            .iter()
            .zip(rows)
            .map(|(l, r)| {
                let mut y = vec![0f32; r];
                lin_matvec(l, &x, &mut y).unwrap();
                y
            })
            .collect();
        for pick in [vec![0, 1, 2], vec![3, 4], vec![0, 3, 1, 4, 2], vec![4]] {
            let mut outs: Vec<Vec<f32>> = pick.iter().map(|&i| vec![f32::NAN; rows[i]]).collect();
            let chosen: Vec<&Lin> = pick.iter().map(|&i| &lins[i]).collect();
            let mut ys: Vec<&mut [f32]> = outs.iter_mut().map(|v| v.as_mut_slice()).collect();
            lin_matvec_many(&chosen, &x, &mut ys).unwrap();
            for (&i, got) in pick.iter().zip(&outs) {
                let same = got
                    .iter()
                    .zip(&alone[i])
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "matrix {i} in {pick:?}");
            }
        }
    }
}
