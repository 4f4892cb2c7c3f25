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

/// A strided f32 matrix view: element (i, j) at `off + i·rs + j·cs`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub off: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    /// Row-major rows of width `w`.
    pub fn rows(data: &'a [f32], w: usize) -> View<'a> {
        View {
            data,
            off: 0,
            rs: w,
            cs: 1,
        }
    }

    /// The transpose, without moving data.
    pub fn t(self) -> View<'a> {
        View {
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    pub fn at(self, off: usize) -> View<'a> {
        View {
            off: self.off + off,
            ..self
        }
    }

    /// Asserts that an (r, c) view lies inside its slice: `gemm` reads raw
    /// pointers, so every bound is checked here once per product.
    fn check(&self, r: usize, c: usize) {
        if r > 0 && c > 0 {
            let last = self.off + (r - 1) * self.rs + (c - 1) * self.cs;
            assert!(last < self.data.len(), "matrix view out of bounds");
        }
    }
}

/// How many threads a product may use: rayon's pool (RAYON_NUM_THREADS).
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// c (m, n) ← a (m, k) · b (k, n) (`acc`: c += a · b). `c` is row-major with
/// row stride `ldc` from `c_off`. `par`: the product may fork onto rayon.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    (m, n, k): (usize, usize, usize),
    a: View,
    b: View,
    c: &mut [f32],
    c_off: usize,
    ldc: usize,
    acc: bool,
    par: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    a.check(m, k);
    b.check(k, n);
    assert!(c_off + (m - 1) * ldc + n <= c.len() && n <= ldc.max(1));
    let par = if par && threads() > 1 && m * n * k >= 1 << 15 {
        gemm::Parallelism::Rayon(threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the three views were bounds-checked above for exactly the
    // (m, k), (k, n) and (m, n) elements gemm touches; `c` is borrowed
    // mutably, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr().add(c_off),
            1,
            ldc as isize,
            acc,
            a.data.as_ptr().add(a.off),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr().add(b.off),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

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
