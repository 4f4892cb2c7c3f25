//! capbench's own CPU executor for training: explicit forward and backward
//! kernels over preallocated f32 buffers (llm.c style, the op list of the
//! wgpu engine), the `gemm` crate for matrix products and rayon for the
//! rest — no autograd graph, no allocation per op. Candle's autograd stays
//! the f64 reference that verification compares against.

pub mod attention;
pub mod kernels;
#[cfg(test)]
mod tests;
pub mod train;

pub use crate::models::gemm::{View, matmul, threads};

/// The precision of the executor's weight products. Everything else —
/// norms, RoPE, attention, softmax, cross-entropy, AdamW and the master
/// weights — stays f32 either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compute {
    F32,
    /// bf16 operands, f32 sums (`models::bgemm`): the bf16 of mixed-precision
    /// training.
    Bf16,
}

impl Compute {
    #[allow(clippy::too_many_arguments)]
    fn matmul(
        self,
        dims: (usize, usize, usize),
        a: View,
        b: View,
        c: &mut [f32],
        ldc: usize,
        acc: bool,
    ) {
        match self {
            Compute::F32 => matmul(dims, a, b, c, 0, ldc, acc, true),
            Compute::Bf16 => crate::models::bgemm::matmul_bf16(dims, a, b, c, 0, ldc, acc, true),
        }
    }

    /// Linear layer forward: y (n, out) (+)= x (n, inp) · Wᵀ, W (out, inp).
    #[allow(clippy::too_many_arguments)]
    pub fn linear(
        self,
        x: &[f32],
        w: &[f32],
        y: &mut [f32],
        n: usize,
        inp: usize,
        out: usize,
        acc: bool,
    ) {
        let (a, b) = (View::rows(x, inp), View::rows(w, inp).t());
        self.matmul((n, out, inp), a, b, y, out, acc);
    }

    /// dx (n, inp) (+)= dy (n, out) · W.
    #[allow(clippy::too_many_arguments)]
    pub fn linear_bwd_x(
        self,
        dy: &[f32],
        w: &[f32],
        dx: &mut [f32],
        n: usize,
        inp: usize,
        out: usize,
        acc: bool,
    ) {
        let (a, b) = (View::rows(dy, out), View::rows(w, inp));
        self.matmul((n, inp, out), a, b, dx, inp, acc);
    }

    /// dW (out, inp) = dyᵀ (out, n) · x (n, inp) (overwritten: each weight
    /// is used once per step).
    pub fn linear_bwd_w(
        self,
        dy: &[f32],
        x: &[f32],
        dw: &mut [f32],
        n: usize,
        inp: usize,
        out: usize,
    ) {
        let (a, b) = (View::rows(dy, out).t(), View::rows(x, inp));
        self.matmul((out, inp, n), a, b, dw, inp, false);
    }
}
