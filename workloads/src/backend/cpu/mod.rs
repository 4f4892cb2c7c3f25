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

/// Linear layer forward: y (n, out) (+)= x (n, inp) · Wᵀ, W (out, inp).
pub fn linear(x: &[f32], w: &[f32], y: &mut [f32], n: usize, inp: usize, out: usize, acc: bool) {
    matmul(
        (n, out, inp),
        View::rows(x, inp),
        View::rows(w, inp).t(),
        y,
        0,
        out,
        acc,
        true,
    );
}

/// dx (n, inp) (+)= dy (n, out) · W.
pub fn linear_bwd_x(
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
    n: usize,
    inp: usize,
    out: usize,
    acc: bool,
) {
    matmul(
        (n, inp, out),
        View::rows(dy, out),
        View::rows(w, inp),
        dx,
        0,
        inp,
        acc,
        true,
    );
}

/// dW (out, inp) = dyᵀ (out, n) · x (n, inp) (overwritten: each weight
/// is used once per step).
pub fn linear_bwd_w(dy: &[f32], x: &[f32], dw: &mut [f32], n: usize, inp: usize, out: usize) {
    matmul(
        (out, inp, n),
        View::rows(dy, out).t(),
        View::rows(x, inp),
        dw,
        0,
        inp,
        false,
        true,
    );
}
