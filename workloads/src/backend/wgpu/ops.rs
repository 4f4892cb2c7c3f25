//! Typed constructors for the engine's kernels: shapes, views and strides
//! in, one recorded dispatch out (parameter order as in `ops.wgsl`).

use super::engine::{Builder, DispatchId, F, Ix, Kernel, NONE};
use super::quant::{BLOCK, QMat};

/// A strided matrix: element (i, j) at off + i·rs + j·cs; batch (z1, z2)
/// adds z1·b1 + z2·b2.
#[derive(Debug, Clone, Copy)]
pub struct Mat {
    pub off: u32,
    pub rs: u32,
    pub cs: u32,
    pub b1: u32,
    pub b2: u32,
}

impl Mat {
    /// Row-major with `cols` columns, starting at `t`.
    pub fn rows(t: F, cols: usize) -> Mat {
        Mat {
            off: t.off,
            rs: cols as u32,
            cs: 1,
            b1: 0,
            b2: 0,
        }
    }

    /// The transpose (a view: only strides change).
    pub fn t(self) -> Mat {
        Mat {
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    pub fn batch(self, b1: usize, b2: usize) -> Mat {
        Mat {
            b1: b1 as u32,
            b2: b2 as u32,
            ..self
        }
    }

    pub fn with_rs(self, rs: usize) -> Mat {
        Mat {
            rs: rs as u32,
            ..self
        }
    }
}

/// Workgroups for `threads` threads at `per_group` each, on a 2-D grid.
pub fn grid(threads: usize, per_group: usize) -> [u32; 3] {
    let n = threads.div_ceil(per_group).max(1);
    let x = n.min(65_535);
    [x as u32, n.div_ceil(x) as u32, 1]
}

fn fb(x: f32) -> u32 {
    x.to_bits()
}

fn u(x: usize) -> u32 {
    x as u32
}

/// Shape of a GEMM: C (m, n) = A (m, k) · B (k, n), `nb1 × nb2` batches.
#[derive(Debug, Clone, Copy)]
pub struct Gemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub nb1: usize,
    pub nb2: usize,
    pub alpha: f32,
    /// 0 overwrites C, 1 accumulates into it.
    pub beta: f32,
    /// Batch z has only min(m, count[z]) rows.
    pub count: Option<Ix>,
}

impl Gemm {
    pub fn new(m: usize, n: usize, k: usize) -> Gemm {
        Gemm {
            m,
            n,
            k,
            nb1: 1,
            nb2: 1,
            alpha: 1.0,
            beta: 0.0,
            count: None,
        }
    }
    pub fn beta(self, beta: f32) -> Gemm {
        Gemm { beta, ..self }
    }
    pub fn alpha(self, alpha: f32) -> Gemm {
        Gemm { alpha, ..self }
    }
    pub fn batches(self, nb1: usize, nb2: usize) -> Gemm {
        Gemm { nb1, nb2, ..self }
    }
    pub fn count(self, count: Ix) -> Gemm {
        Gemm {
            count: Some(count),
            ..self
        }
    }
}

/// Which GEMM kernel: the engine picks `Auto` (matvec for ≤ 8 rows, tiled
/// otherwise); the GEMM ladder asks for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GemmKernel {
    Auto,
    Naive,
    Tiled,
}

impl Builder {
    pub fn gemm(&mut self, a: Mat, b: Mat, c: Mat, g: Gemm) -> DispatchId {
        self.gemm_with(GemmKernel::Auto, a, b, c, g)
    }

    pub fn gemm_with(&mut self, kind: GemmKernel, a: Mat, b: Mat, c: Mat, g: Gemm) -> DispatchId {
        let params = vec![
            u(g.m),
            u(g.n),
            u(g.k),
            u(g.nb2),
            a.off,
            a.b1,
            a.b2,
            a.rs,
            a.cs,
            b.off,
            b.b1,
            b.b2,
            b.rs,
            b.cs,
            c.off,
            c.b1,
            c.b2,
            c.rs,
            c.cs,
            fb(g.alpha),
            fb(g.beta),
            g.count.map(|c| c.off).unwrap_or(NONE),
        ];
        let single = g.nb1 * g.nb2 == 1 && g.count.is_none();
        let kind = match kind {
            GemmKernel::Auto if single && g.m <= 8 => {
                return self.push(Kernel::Matvec, params, grid(g.n, 1));
            }
            GemmKernel::Auto => GemmKernel::Tiled,
            k => k,
        };
        let tiles = [
            g.n.div_ceil(16) as u32,
            g.m.div_ceil(16) as u32,
            (g.nb1 * g.nb2) as u32,
        ];
        match kind {
            GemmKernel::Naive => {
                assert!(single, "the naive GEMM is not batched");
                self.push(Kernel::MatmulNaive, params, tiles)
            }
            _ => self.push(Kernel::Matmul, params, tiles),
        }
    }

    /// y (m, W.rows) (+)= x (m, W.cols) · Wᵀ with W quantized (`qmatvec`):
    /// x and y row-major with their own row strides (`Mat::rs`, `cs` 1);
    /// `batches` batches at x's, W's (`w_batch_words`) and y's batch strides
    /// (`b1`), batch z with min(m, count[z]) rows when a count is given.
    #[allow(clippy::too_many_arguments)]
    pub fn qmatmul(
        &mut self,
        x: Mat,
        w: QMat,
        w_batch_words: usize,
        y: Mat,
        m: usize,
        batches: usize,
        count: Option<Ix>,
        beta: f32,
    ) -> DispatchId {
        assert!(x.cs == 1 && y.cs == 1, "qmatmul: rows must be contiguous");
        assert!(w.cols.is_multiple_of(BLOCK), "qmatmul: cols % 32 != 0");
        let tiles = m.div_ceil(8).max(1);
        let params = vec![
            u(m),
            u(w.rows),
            u(w.cols),
            w.fmt.code(),
            x.off,
            x.rs,
            x.b1,
            w.w.off,
            u(w_batch_words),
            y.off,
            y.rs,
            y.b1,
            fb(beta),
            count.map(|c| c.off).unwrap_or(NONE),
            u(tiles),
        ];
        let mut groups = grid(w.rows * tiles, 1);
        groups[2] = batches as u32;
        self.push(Kernel::Qmatvec, params, groups)
    }

    /// y (rows, W.rows) (+)= x (rows, W.cols) · Wᵀ, W quantized.
    pub fn qlinear(&mut self, x: F, w: QMat, y: F, rows: usize, beta: f32) {
        self.qmatmul(
            Mat::rows(x, w.cols),
            w,
            0,
            Mat::rows(y, w.rows),
            rows,
            1,
            None,
            beta,
        );
    }

    /// y (rows, out) = x (rows, in) · Wᵀ, W (out, in) row-major; `beta` 1
    /// adds to y.
    #[allow(clippy::too_many_arguments)]
    pub fn linear(&mut self, x: F, w: F, y: F, rows: usize, inp: usize, out: usize, beta: f32) {
        self.gemm(
            Mat::rows(x, inp),
            Mat::rows(w, inp).t(),
            Mat::rows(y, out),
            Gemm::new(rows, out, inp).beta(beta),
        );
    }

    /// dx (rows, in) (+)= dy (rows, out) · W.
    #[allow(clippy::too_many_arguments)]
    pub fn linear_bwd_x(
        &mut self,
        dy: F,
        w: F,
        dx: F,
        rows: usize,
        inp: usize,
        out: usize,
        beta: f32,
    ) {
        self.gemm(
            Mat::rows(dy, out),
            Mat::rows(w, inp),
            Mat::rows(dx, inp),
            Gemm::new(rows, inp, out).beta(beta),
        );
    }

    /// dW (out, in) += dyᵀ · x.
    pub fn linear_bwd_w(&mut self, dy: F, x: F, dw: F, rows: usize, inp: usize, out: usize) {
        self.gemm(
            Mat::rows(dy, out).t(),
            Mat::rows(x, inp),
            Mat::rows(dw, inp),
            Gemm::new(out, inp, rows).beta(1.0),
        );
    }

    /// dst[i0,i1,i2] = alpha · Σ_r src[i0,i1,i2,r] + beta · dst[i0,i1,i2].
    #[allow(clippy::too_many_arguments)]
    pub fn copy(
        &mut self,
        n: [usize; 3],
        nr: usize,
        src: (u32, [usize; 3], usize),
        dst: (u32, [usize; 3]),
        alpha: f32,
        beta: f32,
    ) {
        let params = vec![
            u(n[0]),
            u(n[1]),
            u(n[2]),
            u(nr),
            src.0,
            u(src.1[0]),
            u(src.1[1]),
            u(src.1[2]),
            u(src.2),
            dst.0,
            u(dst.1[0]),
            u(dst.1[1]),
            u(dst.1[2]),
            fb(alpha),
            fb(beta),
        ];
        self.push(Kernel::Copy, params, grid(n[0] * n[1] * n[2], 256));
    }

    pub fn zero(&mut self, t: F) {
        self.copy(
            [1, 1, t.len as usize],
            0,
            (t.off, [0, 0, 0], 0),
            (t.off, [0, 0, 1]),
            0.0,
            0.0,
        );
    }

    /// dst = src (beta 0) or dst += src (beta 1), contiguous, same length.
    pub fn add_into(&mut self, src: F, dst: F, beta: f32) {
        assert_eq!(src.len, dst.len);
        self.copy(
            [1, 1, src.len as usize],
            1,
            (src.off, [0, 0, 1], 0),
            (dst.off, [0, 0, 1]),
            1.0,
            beta,
        );
    }

    pub fn embed_fwd(&mut self, tok: Ix, table: F, out: F, cols: usize) {
        let n = tok.len as usize;
        let params = vec![u(n), u(cols), tok.off, table.off, out.off];
        self.push(Kernel::EmbedFwd, params, grid(n * cols, 256));
    }

    pub fn embed_bwd(&mut self, tok: Ix, dx: F, dtable: F, cols: usize) {
        let params = vec![u(tok.len as usize), u(cols), tok.off, dx.off, dtable.off];
        self.push(Kernel::EmbedBwd, params, grid(cols, 256));
    }

    /// rstd: `None` in inference (not kept).
    pub fn rmsnorm_fwd(&mut self, x: F, w: F, y: F, rstd: Option<F>, rows: usize, eps: f32) {
        let cols = w.len as usize;
        let params = vec![
            u(rows),
            u(cols),
            x.off,
            w.off,
            y.off,
            rstd.map(|r| r.off).unwrap_or(NONE),
            fb(eps),
        ];
        self.push(Kernel::RmsnormFwd, params, grid(rows, 1));
    }

    /// dx (+)= ∂/∂x and dw += ∂/∂w of y = rmsnorm(x)·w.
    #[allow(clippy::too_many_arguments)]
    pub fn rmsnorm_bwd(
        &mut self,
        x: F,
        w: F,
        rstd: F,
        dy: F,
        dx: F,
        dw: F,
        rows: usize,
        beta: f32,
    ) {
        let cols = w.len as usize;
        let params = vec![
            u(rows),
            u(cols),
            x.off,
            w.off,
            dy.off,
            rstd.off,
            dx.off,
            fb(beta),
        ];
        self.push(Kernel::RmsnormBwdX, params, grid(rows, 1));
        let params = vec![u(rows), u(cols), x.off, w.off, dy.off, rstd.off, dw.off];
        self.push(Kernel::RmsnormBwdW, params, grid(cols, 256));
    }

    /// RoPE in place over `rows` rows (b, t) of `heads` heads: the rotated
    /// `dim` elements of head h of row r start at off + r·row_stride +
    /// h·head_stride. `tables` = (cos, sin), each (positions, dim/2).
    #[allow(clippy::too_many_arguments)]
    pub fn rope(
        &mut self,
        off: u32,
        rows: usize,
        t: usize,
        heads: usize,
        dim: usize,
        strides: (usize, usize),
        pos0: usize,
        tables: (F, F),
        backward: bool,
    ) {
        let params = vec![
            u(rows),
            u(t),
            u(heads),
            u(dim),
            off,
            u(strides.0),
            u(strides.1),
            u(pos0),
            tables.0.off,
            tables.1.off,
            fb(if backward { -1.0 } else { 1.0 }),
        ];
        self.push(Kernel::Rope, params, grid(rows * heads * dim / 2, 256));
    }

    pub fn attention(&mut self, a: &Attn) {
        self.push(Kernel::AttnFwd, a.params(), grid(a.b * a.h * a.t, 64));
    }

    /// dq, dk, dv (overwritten) from do, with the forward's o and lse.
    pub fn attention_bwd(&mut self, a: &Attn) {
        self.push(Kernel::AttnBwdDq, a.params(), grid(a.b * a.h * a.t, 64));
        self.push(
            Kernel::AttnBwdDkv,
            a.params(),
            grid(a.b * a.hkv * (a.pos0 + a.t), 64),
        );
    }

    pub fn swiglu_fwd(&mut self, g: F, up: F, a: F) {
        let n = a.len as usize;
        self.push(
            Kernel::SwigluFwd,
            vec![u(n), g.off, up.off, a.off],
            grid(n, 256),
        );
    }

    pub fn swiglu_bwd(&mut self, g: F, up: F, da: F, dg: F, du: F) {
        let n = da.len as usize;
        let params = vec![u(n), g.off, up.off, da.off, dg.off, du.off];
        self.push(Kernel::SwigluBwd, params, grid(n, 256));
    }

    pub fn softmax_fwd(&mut self, x: F, y: F, rows: usize, cols: usize) {
        let params = vec![u(rows), u(cols), x.off, y.off];
        self.push(Kernel::SoftmaxFwd, params, grid(rows, 1));
    }

    pub fn softmax_bwd(&mut self, y: F, dy: F, dx: F, rows: usize, cols: usize) {
        let params = vec![u(rows), u(cols), y.off, dy.off, dx.off];
        self.push(Kernel::SoftmaxBwd, params, grid(rows, 1));
    }

    /// Per-row loss into `loss`; with `dlogits`, the gradient of the mean.
    pub fn xent(&mut self, logits: F, tgt: Ix, loss: F, dlogits: Option<F>, rows: usize, v: usize) {
        let params = vec![
            u(rows),
            u(v),
            logits.off,
            tgt.off,
            loss.off,
            dlogits.map(|d| d.off).unwrap_or(NONE),
            fb(1.0 / rows as f32),
        ];
        self.push(Kernel::Xent, params, grid(rows, 1));
    }

    /// out[r] = argmax of row r (rows of `v` at `row_stride`).
    pub fn argmax(&mut self, x: F, rows: usize, v: usize, row_stride: usize, out: Ix) {
        let params = vec![u(rows), u(v), x.off, u(row_stride), out.off];
        self.push(Kernel::Argmax, params, grid(rows, 1));
    }

    /// Routing tables from probs (n, e): pos (n·e), idx (e·n), cnt (e).
    pub fn moe_route(&mut self, probs: F, n: usize, e: usize, k: usize, r: &Route) {
        let params = vec![u(n), u(e), u(k), probs.off, r.pos.off];
        self.push(Kernel::MoeTopk, params, grid(n, 256));
        let params = vec![u(n), u(e), r.pos.off, r.idx.off, r.cnt.off];
        self.push(Kernel::MoeCompact, params, grid(e, 256));
    }

    /// out (e, n, c): token rows per expert slot, zero beyond the count,
    /// scaled by probs when given.
    #[allow(clippy::too_many_arguments)]
    pub fn moe_gather(
        &mut self,
        x: F,
        out: F,
        r: &Route,
        n: usize,
        e: usize,
        c: usize,
        probs: Option<F>,
    ) {
        let params = vec![
            u(n),
            u(e),
            u(c),
            x.off,
            out.off,
            r.idx.off,
            r.cnt.off,
            probs.map(|p| p.off).unwrap_or(NONE),
        ];
        self.push(Kernel::MoeGather, params, grid(e * n * c, 256));
    }

    /// out (n, c) (+)= Σ_chosen e w · ye[e, slot].
    #[allow(clippy::too_many_arguments)]
    pub fn moe_combine(
        &mut self,
        ye: F,
        out: F,
        r: &Route,
        n: usize,
        e: usize,
        c: usize,
        probs: Option<F>,
        beta: f32,
    ) {
        let params = vec![
            u(n),
            u(e),
            u(c),
            ye.off,
            out.off,
            r.pos.off,
            probs.map(|p| p.off).unwrap_or(NONE),
            fb(beta),
        ];
        self.push(Kernel::MoeCombine, params, grid(n * c, 256));
    }

    #[allow(clippy::too_many_arguments)]
    pub fn moe_dprob(&mut self, dout: F, ye: F, r: &Route, dp: F, n: usize, e: usize, c: usize) {
        let params = vec![u(n), u(e), u(c), dout.off, ye.off, r.pos.off, dp.off];
        self.push(Kernel::MoeDprob, params, grid(n * e, 256));
    }

    /// AdamW over one contiguous range of parameters, gradients and moments;
    /// the step's bias corrections are set per step with `adamw_params`.
    pub fn adamw(&mut self, p: F, g: F, m: F, v: F) -> DispatchId {
        let n = p.len as usize;
        let params = adamw_params(n, (p, g, m, v), &AdamW::default(), 1);
        self.push(Kernel::Adamw, params, grid(n, 256))
    }

    pub fn triad(&mut self, a: F, b: F, c: F, s: f32) {
        let n = a.len as usize;
        let params = vec![u(n), a.off, b.off, c.off, fb(s)];
        self.push(Kernel::Triad, params, grid(n, 256));
    }
}

/// AdamW hyper-parameters.
#[derive(Debug, Clone, Copy)]
pub struct AdamW {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

impl Default for AdamW {
    fn default() -> AdamW {
        AdamW {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
        }
    }
}

/// The AdamW dispatch's parameters for step `t` (1-based).
pub fn adamw_params(n: usize, bufs: (F, F, F, F), h: &AdamW, t: usize) -> Vec<u32> {
    let t = t as i32;
    let c1 = 1.0 - (h.beta1 as f64).powi(t);
    let c2 = 1.0 - (h.beta2 as f64).powi(t);
    vec![
        u(n),
        bufs.0.off,
        bufs.1.off,
        bufs.2.off,
        bufs.3.off,
        fb(h.lr),
        fb(h.beta1),
        fb(h.beta2),
        fb(h.eps),
        fb(h.weight_decay),
        fb(c1 as f32),
        fb(c2 as f32),
    ]
}

/// MoE routing tables in the u32 arena.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// (n, e): slot of token n in expert e, or NONE.
    pub pos: Ix,
    /// (e, n): token of slot i of expert e.
    pub idx: Ix,
    /// (e): tokens per expert.
    pub cnt: Ix,
}

impl Route {
    pub fn alloc(b: &mut Builder, n: usize, e: usize) -> Route {
        Route {
            pos: b.u(n * e),
            idx: b.u(e * n),
            cnt: b.u(e),
        }
    }
}

/// One causal attention call: views and strides of q, k, v, o (and their
/// gradients, with the same strides) — see `attn_fwd` in ops.wgsl.
#[derive(Debug, Clone, Copy)]
pub struct Attn {
    pub b: usize,
    pub h: usize,
    pub t: usize,
    pub hkv: usize,
    pub dk: usize,
    pub dv: usize,
    pub pos0: usize,
    pub scale: f32,
    /// (off, batch stride, row stride, head stride)
    pub q: (u32, usize, usize, usize),
    pub k: (u32, usize, usize, usize),
    pub v: (u32, usize, usize, usize),
    pub o: (u32, usize, usize, usize),
    pub lse: Option<F>,
    /// Offsets of do, dq, dk, dv (backward only).
    pub grads: Option<(F, F, F, F)>,
}

impl Attn {
    fn params(&self) -> Vec<u32> {
        let s = |x: (u32, usize, usize, usize)| [x.0, u(x.1), u(x.2), u(x.3)];
        let mut v = vec![
            u(self.b),
            u(self.h),
            u(self.t),
            u(self.hkv),
            u(self.dk),
            u(self.dv),
            u(self.pos0),
            fb(self.scale),
        ];
        v.extend(s(self.q));
        v.extend(s(self.k));
        v.extend(s(self.v));
        v.extend(s(self.o));
        v.push(self.lse.map(|l| l.off).unwrap_or(NONE));
        let g = self.grads.map(|(a, b, c, d)| [a.off, b.off, c.off, d.off]);
        v.extend(g.unwrap_or([NONE; 4]));
        v
    }
}
