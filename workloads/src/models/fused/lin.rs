//! The decode step's weight products: one matrix × vector for any storage
//! of a linear layer, and the same split into the tasks of a team.

use candle_core::{CpuStorage, Device, Result, Storage, Tensor};

use super::super::matvec::{self, Weights, chunk_rows, matvec, rows_into};
use super::super::ops::Lin;
use super::super::q4::{ActRows, MATVEC_CHUNK, Q4Matrix};
use super::super::q8::Q8Matrix;

/// A contiguous CPU tensor's elements in their stored type.
pub(super) fn with_weights<R>(t: &Tensor, f: impl FnOnce(Weights) -> R) -> Result<R> {
    Ok(f(Held::new(t)?.weights()?))
}

fn weights_in<'a>(storage: &'a Storage, (a, b): (usize, usize), t: &Tensor) -> Result<Weights<'a>> {
    Ok(match storage {
        Storage::Cpu(CpuStorage::F16(v)) => Weights::F16(&v[a..b]),
        Storage::Cpu(CpuStorage::BF16(v)) => Weights::Bf16(&v[a..b]),
        Storage::Cpu(CpuStorage::F32(v)) => Weights::F32(&v[a..b]),
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

/// A linear layer's weights as the decode team's tasks read them.
#[derive(Clone, Copy)]
pub(super) enum Mat<'a> {
    Dense(Weights<'a>),
    Q4(&'a Q4Matrix),
    Q8(&'a Q8Matrix),
    /// candle's quantized product (rows that are not whole q4_0/q8_0
    /// blocks): one task runs it whole.
    Candle(&'a Lin),
}

impl<'a> Mat<'a> {
    /// The weights of `lin`; a dense one from its storage guard in `held`.
    pub(super) fn of(lin: &'a Lin, held: &mut impl Iterator<Item = &'a Held<'a>>) -> Result<Self> {
        Ok(match lin {
            Lin::Dense(_) => Mat::Dense(held.next().expect("a guard per dense weight").weights()?),
            Lin::Q4(q) => Mat::Q4(q),
            Lin::Q8(q) => Mat::Q8(q),
            Lin::Quant(_) | Lin::QuantRows(_) => Mat::Candle(lin),
        })
    }

    /// Whether its tasks read the activations quantized to q8_0.
    pub(super) fn quantized(&self) -> bool {
        matches!(self, Mat::Q4(_) | Mat::Q8(_))
    }

    /// Rows per task: as `lin_matvec` splits the matrix.
    fn chunk(&self, rows: usize) -> usize {
        match self {
            Mat::Dense(_) => chunk_rows(rows),
            Mat::Q4(_) | Mat::Q8(_) => MATVEC_CHUNK,
            Mat::Candle(_) => rows.max(1),
        }
    }

    pub(super) fn tasks(&self, rows: usize) -> usize {
        rows.div_ceil(self.chunk(rows))
    }

    /// The rows of task `i`.
    pub(super) fn task_rows(&self, rows: usize, i: usize) -> std::ops::Range<usize> {
        let c = self.chunk(rows);
        i * c..((i + 1) * c).min(rows)
    }

    /// ys = rows `r` of W·x, each row computed as `lin_matvec` computes it
    /// (`acts`: x quantized, for q4_0/q8_0).
    pub(super) fn rows_into(
        &self,
        x: &[f32],
        acts: Option<&ActRows>,
        r: std::ops::Range<usize>,
        ys: &mut [f32],
    ) -> Result<()> {
        let a = || {
            acts.expect("activations quantized for a q4_0/q8_0 matrix")
                .row(0)
        };
        match self {
            Mat::Dense(w) => rows_into(matvec::path(), *w, x.len(), x, r.start, ys),
            Mat::Q4(q) => q.rows_into(a(), r.start, ys),
            Mat::Q8(q) => q.rows_into(a(), r.start, ys),
            Mat::Candle(lin) => lin_matvec(lin, x, ys)?,
        }
        Ok(())
    }
}

/// A dense weight's storage, read-locked while the team reads it.
pub(super) struct Held<'a> {
    guard: Box<dyn std::ops::Deref<Target = Storage> + 'a>,
    span: (usize, usize),
    tensor: &'a Tensor,
}

impl<'a> Held<'a> {
    pub(super) fn new(t: &'a Tensor) -> Result<Held<'a>> {
        let (guard, layout) = t.storage_and_layout();
        let span = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("fused decode: weight not contiguous".into()))?;
        Ok(Held {
            guard: Box::new(guard),
            span,
            tensor: t,
        })
    }

    pub(super) fn weights(&self) -> Result<Weights<'_>> {
        weights_in(&self.guard, self.span, self.tensor)
    }
}
