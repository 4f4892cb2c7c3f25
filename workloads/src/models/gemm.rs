//! The f32 matrix product every CPU path shares (the `gemm` crate over
//! strided views): the training executor (`backend::cpu`), the fused
//! prefill's attention and the float-weight GEMM (`fgemm`). In `models`, the
//! lowest layer that uses it.

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
