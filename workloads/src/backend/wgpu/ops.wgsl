// capbench's wgpu engine kernels: every op of the model families, forward and
// backward, over one f32 arena (D) and one u32 arena (U). Each dispatch reads
// its shape, offsets and strides (in elements) from its own 256-byte uniform
// slot P; floats are stored there as their bit patterns.

struct Params {
    v: array<vec4<u32>, 16>,
}

@group(0) @binding(0) var<storage, read_write> D: array<f32>;
@group(0) @binding(1) var<storage, read_write> U: array<u32>;
@group(0) @binding(2) var<uniform> P: Params;

const NONE: u32 = 0xffffffffu;
// Head dimensions up to this many elements (per-thread attention rows).
const MAXD: u32 = 128u;

fn p(i: u32) -> u32 {
    return P.v[i / 4u][i % 4u];
}

fn pf(i: u32) -> f32 {
    return bitcast<f32>(p(i));
}

// Element-wise kernels run 256 threads per workgroup on a 2-D grid (more
// than 65535 workgroups do not fit one dimension).
fn gid(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + lid;
}

fn row_of(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.y * nwg.x + wg.x;
}

// ---------------------------------------------------------------- reductions
// Row kernels: one 64-thread workgroup per row.

var<workgroup> red: array<f32, 64>;
var<workgroup> red_i: array<u32, 64>;

fn reduce_sum(x: f32, lid: u32) -> f32 {
    red[lid] = x;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red[lid] = red[lid] + red[lid + s];
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn reduce_max(x: f32, lid: u32) -> f32 {
    red[lid] = x;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red[lid] = max(red[lid], red[lid + s]);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

// ---------------------------------------------------------------- GEMM
// C(i,j) = alpha · Σ_k A(i,k) B(k,j) + beta · C(i,j), every operand strided,
// batched over z = z1·nb2 + z2 with two batch strides per operand. With a
// count offset, batch z only has min(M, U[count + z]) rows (MoE experts).
// params: 0 M, 1 N, 2 K, 3 nb2, 4 a_off, 5 a_b1, 6 a_b2, 7 a_si, 8 a_sk,
// 9 b_off, 10 b_b1, 11 b_b2, 12 b_sk, 13 b_sj, 14 c_off, 15 c_b1, 16 c_b2,
// 17 c_si, 18 c_sj, 19 alpha, 20 beta, 21 count_off.

const TS: u32 = 16u;
var<workgroup> ta: array<f32, 256>; // (TS rows, TS k)
var<workgroup> tb: array<f32, 256>; // (TS k, TS cols)
var<workgroup> sh_m: u32;

fn batch_rows(z: u32) -> u32 {
    var m = p(0u);
    let cnt = p(21u);
    if (cnt != NONE) {
        m = min(m, U[cnt + z]);
    }
    return m;
}

// Tiled: a 16×16 output tile per workgroup, A and B staged through
// workgroup memory 16 columns of k at a time.
@compute @workgroup_size(16, 16, 1)
fn matmul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let z = wg.z;
    let z1 = z / p(3u);
    let z2 = z % p(3u);
    if (lid.x == 0u && lid.y == 0u) {
        sh_m = batch_rows(z);
    }
    let m = workgroupUniformLoad(&sh_m);
    let n = p(1u);
    let k = p(2u);
    let row0 = wg.y * TS;
    if (row0 >= m) {
        return;
    }
    let a0 = p(4u) + z1 * p(5u) + z2 * p(6u);
    let b0 = p(9u) + z1 * p(10u) + z2 * p(11u);
    let c0 = p(14u) + z1 * p(15u) + z2 * p(16u);
    let r = row0 + lid.y;
    let c = wg.x * TS + lid.x;
    var acc = 0.0;
    for (var k0 = 0u; k0 < k; k0 += TS) {
        var av = 0.0;
        if (r < m && k0 + lid.x < k) {
            av = D[a0 + r * p(7u) + (k0 + lid.x) * p(8u)];
        }
        ta[lid.y * TS + lid.x] = av;
        var bv = 0.0;
        if (k0 + lid.y < k && c < n) {
            bv = D[b0 + (k0 + lid.y) * p(12u) + c * p(13u)];
        }
        tb[lid.y * TS + lid.x] = bv;
        workgroupBarrier();
        for (var q = 0u; q < TS; q++) {
            acc = fma(ta[lid.y * TS + q], tb[q * TS + lid.x], acc);
        }
        workgroupBarrier();
    }
    if (r < m && c < n) {
        let idx = c0 + r * p(17u) + c * p(18u);
        var out = pf(19u) * acc;
        let beta = pf(20u);
        if (beta != 0.0) {
            out += beta * D[idx];
        }
        D[idx] = out;
    }
}

// Naive: one thread per output, no workgroup memory (the GEMM ladder's
// first rung). Same parameters as `matmul`, no batching.
@compute @workgroup_size(16, 16, 1)
fn matmul_naive(@builtin(global_invocation_id) g: vec3<u32>) {
    let m = p(0u);
    let n = p(1u);
    let k = p(2u);
    let r = g.y;
    let c = g.x;
    if (r >= m || c >= n) {
        return;
    }
    var acc = 0.0;
    for (var q = 0u; q < k; q++) {
        acc = fma(D[p(4u) + r * p(7u) + q * p(8u)], D[p(9u) + q * p(12u) + c * p(13u)], acc);
    }
    let idx = p(14u) + r * p(17u) + c * p(18u);
    var out = pf(19u) * acc;
    if (pf(20u) != 0.0) {
        out += pf(20u) * D[idx];
    }
    D[idx] = out;
}

// Matrix-vector for decode: M ≤ 8 rows against a weight read once; one
// 64-thread workgroup per output column, threads split k. Same parameters
// as `matmul`, no batching.
var<workgroup> red8: array<f32, 512>;

@compute @workgroup_size(64)
fn matvec(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let j = row_of(wg, nwg);
    let m = p(0u);
    if (j >= p(1u)) {
        return;
    }
    var acc: array<f32, 8>;
    for (var i = 0u; i < 8u; i++) {
        acc[i] = 0.0;
    }
    for (var q = lid; q < p(2u); q += 64u) {
        let w = D[p(9u) + q * p(12u) + j * p(13u)];
        for (var i = 0u; i < m; i++) {
            acc[i] = fma(D[p(4u) + i * p(7u) + q * p(8u)], w, acc[i]);
        }
    }
    for (var i = 0u; i < 8u; i++) {
        red8[i * 64u + lid] = acc[i];
    }
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            for (var i = 0u; i < 8u; i++) {
                red8[i * 64u + lid] += red8[i * 64u + lid + s];
            }
        }
        workgroupBarrier();
    }
    if (lid < m) {
        let idx = p(14u) + lid * p(17u) + j * p(18u);
        var out = pf(19u) * red8[lid * 64u];
        if (pf(20u) != 0.0) {
            out += pf(20u) * D[idx];
        }
        D[idx] = out;
    }
}

// ---------------------------------------------------------------- quantized matvec
// y (M, N) = x (M, K) · Wᵀ (+ beta · y) with W (N, K) stored in U: q8_0 and
// q4_0 in ggml's block layout — a q8_0 block is an f16 scale then 32 int8
// (34 bytes), a q4_0 block an f16 scale then 16 bytes of nibbles (low
// nibbles elements 0..16, high nibbles 16..32, value = nibble − 8) — or
// f16 / bf16, two halves a word. WGSL has no u8 or f16 storage without
// extensions, so weights are read as 16-bit halfwords (17, 9 or 32 per 32
// weights: a q8_0/q4_0 block may start on either half of a word) and
// converted on the fly; activations and sums stay f32. One 64-thread workgroup per output
// column and up to 8 input rows (each weight block is read once for all of
// them); threads split the row's blocks, then reduce. Batched over z (MoE
// experts) with an optional row count per batch, as `matmul`.
// params: 0 M, 1 N, 2 K (a multiple of 32), 3 fmt (0 q8_0, 1 q4_0, 2 f16, 3 bf16),
// 4 x_off, 5 x_rs, 6 x_b, 7 w_off (U words), 8 w_b (U words), 9 y_off,
// 10 y_rs, 11 y_b, 12 beta, 13 count_off, 14 row tiles (ceil(M / 8)).

fn half_at(h: u32) -> u32 {
    return (U[h >> 1u] >> ((h & 1u) * 16u)) & 0xffffu;
}

// Sign-extended byte `i` (0 or 1) of a halfword.
fn i8_of(v: u32, i: u32) -> f32 {
    return f32(extractBits(bitcast<i32>(v), i * 8u, 8u));
}

var<workgroup> sh_qm: u32;

@compute @workgroup_size(64)
fn qmatvec(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n = p(1u);
    let wid = row_of(wg, nwg);
    if (wid >= n * p(14u)) {
        return;
    }
    let j = wid % n;
    let r0 = (wid / n) * 8u;
    let z = wg.z;
    if (lid == 0u) {
        var m = p(0u);
        let cnt = p(13u);
        if (cnt != NONE) {
            m = min(m, U[cnt + z]);
        }
        sh_qm = m;
    }
    let m = workgroupUniformLoad(&sh_qm);
    if (r0 >= m) {
        return;
    }
    let rows = min(8u, m - r0);
    let nb = p(2u) / 32u;
    let fmt = p(3u);
    var bh = 17u;
    if (fmt == 1u) {
        bh = 9u;
    } else if (fmt >= 2u) {
        bh = 32u;
    }
    let xrs = p(5u);
    let h0 = 2u * (p(7u) + z * p(8u)) + j * nb * bh;
    let x0 = p(4u) + z * p(6u) + r0 * xrs;
    var acc: array<f32, 8>;
    for (var i = 0u; i < 8u; i++) {
        acc[i] = 0.0;
    }
    for (var b = lid; b < nb; b += 64u) {
        let hb = h0 + b * bh;
        var d = 1.0;
        if (fmt < 2u) {
            d = unpack2x16float(half_at(hb)).x;
        }
        let xb = x0 + b * 32u;
        var s: array<f32, 8>;
        for (var i = 0u; i < 8u; i++) {
            s[i] = 0.0;
        }
        if (fmt >= 2u) {
            // 16 words of two halves (rows of 32·k halves start on a word).
            let wb = hb >> 1u;
            for (var e = 0u; e < 16u; e++) {
                let v = U[wb + e];
                var w = unpack2x16float(v);
                if (fmt == 3u) {
                    w = vec2<f32>(bitcast<f32>(v << 16u), bitcast<f32>(v & 0xffff0000u));
                }
                for (var i = 0u; i < rows; i++) {
                    let xi = xb + i * xrs + 2u * e;
                    s[i] += w.x * D[xi] + w.y * D[xi + 1u];
                }
            }
        } else if (fmt == 1u) {
            // Halfword e holds bytes 2e, 2e+1: elements 2e, 2e+1 (low
            // nibbles) and 2e+16, 2e+17 (high nibbles).
            for (var e = 0u; e < 8u; e++) {
                let v = half_at(hb + 1u + e);
                let w0 = f32(v & 0xfu) - 8.0;
                let w1 = f32((v >> 8u) & 0xfu) - 8.0;
                let w2 = f32((v >> 4u) & 0xfu) - 8.0;
                let w3 = f32((v >> 12u) & 0xfu) - 8.0;
                for (var i = 0u; i < rows; i++) {
                    let xi = xb + i * xrs + 2u * e;
                    s[i] += w0 * D[xi] + w1 * D[xi + 1u] + w2 * D[xi + 16u] + w3 * D[xi + 17u];
                }
            }
        } else {
            for (var e = 0u; e < 16u; e++) {
                let v = half_at(hb + 1u + e);
                let w0 = i8_of(v, 0u);
                let w1 = i8_of(v, 1u);
                for (var i = 0u; i < rows; i++) {
                    let xi = xb + i * xrs + 2u * e;
                    s[i] += w0 * D[xi] + w1 * D[xi + 1u];
                }
            }
        }
        for (var i = 0u; i < 8u; i++) {
            acc[i] = fma(d, s[i], acc[i]);
        }
    }
    for (var i = 0u; i < 8u; i++) {
        red8[i * 64u + lid] = acc[i];
    }
    workgroupBarrier();
    for (var st = 32u; st > 0u; st = st >> 1u) {
        if (lid < st) {
            for (var i = 0u; i < 8u; i++) {
                red8[i * 64u + lid] += red8[i * 64u + lid + st];
            }
        }
        workgroupBarrier();
    }
    if (lid < rows) {
        let idx = p(9u) + z * p(11u) + (r0 + lid) * p(10u) + j;
        var out = red8[lid * 64u];
        let beta = pf(12u);
        if (beta != 0.0) {
            out += beta * D[idx];
        }
        D[idx] = out;
    }
}

// ---------------------------------------------------------------- copies
// dst[i0,i1,i2] = alpha · Σ_r src[i0,i1,i2,r] + beta · dst[i0,i1,i2]
// (nr = 0 with beta = 0 zero-fills). Gathers, scatters into the KV cache,
// concatenation, residual adds and head sums are all this kernel.
// params: 0 n0, 1 n1, 2 n2, 3 nr, 4 s_off, 5 s0, 6 s1, 7 s2, 8 sr,
// 9 d_off, 10 d0, 11 d1, 12 d2, 13 alpha, 14 beta.
@compute @workgroup_size(256)
fn copy(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = gid(wg, nwg, lid);
    let n2 = p(2u);
    let n1 = p(1u);
    if (i >= p(0u) * n1 * n2) {
        return;
    }
    let i2 = i % n2;
    let i1 = (i / n2) % n1;
    let i0 = i / (n1 * n2);
    let s = p(4u) + i0 * p(5u) + i1 * p(6u) + i2 * p(7u);
    var acc = 0.0;
    for (var r = 0u; r < p(3u); r++) {
        acc += D[s + r * p(8u)];
    }
    let d = p(9u) + i0 * p(10u) + i1 * p(11u) + i2 * p(12u);
    var out = pf(13u) * acc;
    if (pf(14u) != 0.0) {
        out += pf(14u) * D[d];
    }
    D[d] = out;
}

// ---------------------------------------------------------------- embedding
// params: 0 n_tok, 1 C, 2 tok_off (U), 3 e_off, 4 out_off
@compute @workgroup_size(256)
fn embed_fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = gid(wg, nwg, lid);
    let c = p(1u);
    if (i >= p(0u) * c) {
        return;
    }
    let t = i / c;
    D[p(4u) + i] = D[p(3u) + U[p(2u) + t] * c + i % c];
}

// One thread per column walks the tokens in order: repeated tokens add up
// without atomics, deterministically.
// params: 0 n_tok, 1 C, 2 tok_off, 3 dx_off, 4 de_off
@compute @workgroup_size(256)
fn embed_bwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let col = gid(wg, nwg, lid);
    let c = p(1u);
    if (col >= c) {
        return;
    }
    for (var t = 0u; t < p(0u); t++) {
        let dst = p(4u) + U[p(2u) + t] * c + col;
        D[dst] = D[dst] + D[p(3u) + t * c + col];
    }
}

// ---------------------------------------------------------------- RMSNorm
// y = x · rstd · w, rstd = 1/sqrt(mean(x²) + eps), rows of C contiguous.
// params: 0 rows, 1 C, 2 x_off, 3 w_off, 4 y_off, 5 rstd_off (NONE: not
// kept), 6 eps
@compute @workgroup_size(64)
fn rmsnorm_fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = row_of(wg, nwg);
    if (row >= p(0u)) {
        return;
    }
    let c = p(1u);
    let x0 = p(2u) + row * c;
    var s = 0.0;
    for (var i = lid; i < c; i += 64u) {
        let v = D[x0 + i];
        s += v * v;
    }
    let tot = reduce_sum(s, lid);
    let r = 1.0 / sqrt(tot / f32(c) + pf(6u));
    for (var i = lid; i < c; i += 64u) {
        D[p(4u) + row * c + i] = D[x0 + i] * r * D[p(3u) + i];
    }
    if (lid == 0u && p(5u) != NONE) {
        D[p(5u) + row] = r;
    }
}

// dx = rstd · (dn − n · mean(dn · n)), n = x · rstd, dn = dy · w; added to
// dx · beta (beta 1 accumulates into a residual gradient).
// params: 0 rows, 1 C, 2 x_off, 3 w_off, 4 dy_off, 5 rstd_off, 6 dx_off, 7 beta
@compute @workgroup_size(64)
fn rmsnorm_bwd_x(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = row_of(wg, nwg);
    if (row >= p(0u)) {
        return;
    }
    let c = p(1u);
    let r = D[p(5u) + row];
    var s = 0.0;
    for (var i = lid; i < c; i += 64u) {
        let n = D[p(2u) + row * c + i] * r;
        s += D[p(4u) + row * c + i] * D[p(3u) + i] * n;
    }
    let mean = reduce_sum(s, lid) / f32(c);
    let beta = pf(7u);
    for (var i = lid; i < c; i += 64u) {
        let n = D[p(2u) + row * c + i] * r;
        let dn = D[p(4u) + row * c + i] * D[p(3u) + i];
        let idx = p(6u) + row * c + i;
        var out = r * (dn - n * mean);
        if (beta != 0.0) {
            out += beta * D[idx];
        }
        D[idx] = out;
    }
}

// dw[c] += Σ_rows dy · x · rstd, one thread per column.
// params: 0 rows, 1 C, 2 x_off, 4 dy_off, 5 rstd_off, 6 dw_off
@compute @workgroup_size(256)
fn rmsnorm_bwd_w(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let col = gid(wg, nwg, lid);
    let c = p(1u);
    if (col >= c) {
        return;
    }
    var acc = 0.0;
    for (var r = 0u; r < p(0u); r++) {
        acc += D[p(4u) + r * c + col] * D[p(2u) + r * c + col] * D[p(5u) + r];
    }
    D[p(6u) + col] += acc;
}

// ---------------------------------------------------------------- RoPE
// Rotate-half RoPE in place on rows (b, t) of H heads: pairs (i, i + dim/2)
// rotated by the angle of position pos0 + t, from host-computed tables
// (f64 → f32, as the CPU model's). sign −1 rotates back: the backward pass.
// params: 0 rows, 1 T, 2 H, 3 dim, 4 off, 5 row_stride, 6 head_stride,
// 7 pos0, 8 cos_off, 9 sin_off, 10 sign
@compute @workgroup_size(256)
fn rope(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = gid(wg, nwg, lid);
    let half = p(3u) / 2u;
    let h_n = p(2u);
    if (i >= p(0u) * h_n * half) {
        return;
    }
    let d = i % half;
    let h = (i / half) % h_n;
    let row = i / (half * h_n);
    let pos = p(7u) + row % p(1u);
    let c = D[p(8u) + pos * half + d];
    let s = D[p(9u) + pos * half + d] * pf(10u);
    let base = p(4u) + row * p(5u) + h * p(6u) + d;
    let x1 = D[base];
    let x2 = D[base + half];
    D[base] = x1 * c - x2 * s;
    D[base + half] = x2 * c + x1 * s;
}

// ---------------------------------------------------------------- attention
// Causal GQA attention, one thread per (b, h, t) query: query t sits at
// position pos0 + t and sees keys 0 ..= pos0 + t (a KV cache when pos0 > 0).
// Online softmax (one pass over keys); the row's log-sum-exp is kept for
// the backward pass. Layouts are strided: element (b, t, h, d) of q at
// q_off + b·q_sb + t·q_st + h·q_sh + d; k, v, o alike (k/v over key rows s).
// params: 0 B, 1 H, 2 T, 3 Hkv, 4 dk, 5 dv, 6 pos0, 7 scale, 8 q_off,
// 9 q_sb, 10 q_st, 11 q_sh, 12 k_off, 13 k_sb, 14 k_ss, 15 k_sh, 16 v_off,
// 17 v_sb, 18 v_ss, 19 v_sh, 20 o_off, 21 o_sb, 22 o_st, 23 o_sh,
// 24 lse_off (NONE: not kept; layout (B, H, T)), 25 do_off, 26 dq_off,
// 27 dk_off, 28 dv_off (gradients share their tensor's strides).

fn q_at(b: u32, t: u32, h: u32) -> u32 {
    return p(8u) + b * p(9u) + t * p(10u) + h * p(11u);
}
fn k_at(b: u32, s: u32, h: u32) -> u32 {
    return p(12u) + b * p(13u) + s * p(14u) + h * p(15u);
}
fn v_at(b: u32, s: u32, h: u32) -> u32 {
    return p(16u) + b * p(17u) + s * p(18u) + h * p(19u);
}
fn o_at(b: u32, t: u32, h: u32) -> u32 {
    return p(20u) + b * p(21u) + t * p(22u) + h * p(23u);
}

@compute @workgroup_size(64)
fn attn_fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = row_of(wg, nwg) * 64u + lid;
    let hn = p(1u);
    let tn = p(2u);
    if (i >= p(0u) * hn * tn) {
        return;
    }
    let t = i % tn;
    let h = (i / tn) % hn;
    let b = i / (tn * hn);
    let kh = h / (hn / p(3u));
    let dk = p(4u);
    let dv = p(5u);
    let scale = pf(7u);
    var q: array<f32, MAXD>;
    let qa = q_at(b, t, h);
    for (var d = 0u; d < dk; d++) {
        q[d] = D[qa + d] * scale;
    }
    var acc: array<f32, MAXD>;
    for (var d = 0u; d < dv; d++) {
        acc[d] = 0.0;
    }
    var m = -3.0e38;
    var l = 0.0;
    let last = p(6u) + t;
    for (var s = 0u; s <= last; s++) {
        let ka = k_at(b, s, kh);
        var sc = 0.0;
        for (var d = 0u; d < dk; d++) {
            sc = fma(q[d], D[ka + d], sc);
        }
        let m_new = max(m, sc);
        let corr = exp(m - m_new);
        let w = exp(sc - m_new);
        l = l * corr + w;
        let va = v_at(b, s, kh);
        for (var d = 0u; d < dv; d++) {
            acc[d] = acc[d] * corr + w * D[va + d];
        }
        m = m_new;
    }
    let oa = o_at(b, t, h);
    for (var d = 0u; d < dv; d++) {
        D[oa + d] = acc[d] / l;
    }
    if (p(24u) != NONE) {
        D[p(24u) + (b * hn + h) * tn + t] = m + log(l);
    }
}

// dq = scale · Σ_s P(dP − Δ) k_s with Δ = dO · O (FlashAttention-2's
// backward), one thread per query; P recomputed from the kept log-sum-exp.
@compute @workgroup_size(64)
fn attn_bwd_dq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = row_of(wg, nwg) * 64u + lid;
    let hn = p(1u);
    let tn = p(2u);
    if (i >= p(0u) * hn * tn) {
        return;
    }
    let t = i % tn;
    let h = (i / tn) % hn;
    let b = i / (tn * hn);
    let kh = h / (hn / p(3u));
    let dk = p(4u);
    let dv = p(5u);
    let scale = pf(7u);
    let qa = q_at(b, t, h);
    let oa = o_at(b, t, h);
    let doa = oa - p(20u) + p(25u);
    var q: array<f32, MAXD>;
    for (var d = 0u; d < dk; d++) {
        q[d] = D[qa + d] * scale;
    }
    var go: array<f32, MAXD>;
    var delta = 0.0;
    for (var d = 0u; d < dv; d++) {
        go[d] = D[doa + d];
        delta += go[d] * D[oa + d];
    }
    let lse = D[p(24u) + (b * hn + h) * tn + t];
    var dq: array<f32, MAXD>;
    for (var d = 0u; d < dk; d++) {
        dq[d] = 0.0;
    }
    for (var s = 0u; s <= p(6u) + t; s++) {
        let ka = k_at(b, s, kh);
        var sc = 0.0;
        for (var d = 0u; d < dk; d++) {
            sc = fma(q[d], D[ka + d], sc);
        }
        let pr = exp(sc - lse);
        let va = v_at(b, s, kh);
        var dp = 0.0;
        for (var d = 0u; d < dv; d++) {
            dp = fma(go[d], D[va + d], dp);
        }
        let ds = pr * (dp - delta) * scale;
        for (var d = 0u; d < dk; d++) {
            dq[d] = fma(ds, D[ka + d], dq[d]);
        }
    }
    let dqa = qa - p(8u) + p(26u);
    for (var d = 0u; d < dk; d++) {
        D[dqa + d] = dq[d];
    }
}

// dk_s, dv_s for one key row of one KV head: the sum over the query heads
// it serves and the queries that see it — no atomics, deterministic.
@compute @workgroup_size(64)
fn attn_bwd_dkv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = row_of(wg, nwg) * 64u + lid;
    let hn = p(1u);
    let tn = p(2u);
    let hkv = p(3u);
    let pos0 = p(6u);
    let sn = pos0 + tn;
    if (i >= p(0u) * hkv * sn) {
        return;
    }
    let s = i % sn;
    let kh = (i / sn) % hkv;
    let b = i / (sn * hkv);
    let rep = hn / hkv;
    let dk = p(4u);
    let dv = p(5u);
    let scale = pf(7u);
    let ka = k_at(b, s, kh);
    let va = v_at(b, s, kh);
    var kk: array<f32, MAXD>;
    var vv: array<f32, MAXD>;
    var gk: array<f32, MAXD>;
    var gv: array<f32, MAXD>;
    for (var d = 0u; d < dk; d++) {
        kk[d] = D[ka + d];
        gk[d] = 0.0;
    }
    for (var d = 0u; d < dv; d++) {
        vv[d] = D[va + d];
        gv[d] = 0.0;
    }
    var t0 = 0u;
    if (s > pos0) {
        t0 = s - pos0;
    }
    for (var h = kh * rep; h < (kh + 1u) * rep; h++) {
        for (var t = t0; t < tn; t++) {
            let qa = q_at(b, t, h);
            var sc = 0.0;
            for (var d = 0u; d < dk; d++) {
                sc = fma(D[qa + d], kk[d], sc);
            }
            let pr = exp(sc * scale - D[p(24u) + (b * hn + h) * tn + t]);
            let oa = o_at(b, t, h);
            let doa = oa - p(20u) + p(25u);
            var dp = 0.0;
            var delta = 0.0;
            for (var d = 0u; d < dv; d++) {
                let g = D[doa + d];
                dp = fma(g, vv[d], dp);
                delta = fma(g, D[oa + d], delta);
                gv[d] = fma(pr, g, gv[d]);
            }
            let ds = pr * (dp - delta) * scale;
            for (var d = 0u; d < dk; d++) {
                gk[d] = fma(ds, D[qa + d], gk[d]);
            }
        }
    }
    let dka = ka - p(12u) + p(27u);
    let dva = va - p(16u) + p(28u);
    for (var d = 0u; d < dk; d++) {
        D[dka + d] = gk[d];
    }
    for (var d = 0u; d < dv; d++) {
        D[dva + d] = gv[d];
    }
}

// ---------------------------------------------------------------- SwiGLU
// a = silu(g) · u over n contiguous elements.
// params: 0 n, 1 g_off, 2 u_off, 3 a_off
@compute @workgroup_size(256)
fn swiglu_fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = gid(wg, nwg, lid);
    if (i >= p(0u)) {
        return;
    }
    let g = D[p(1u) + i];
    D[p(3u) + i] = g / (1.0 + exp(-g)) * D[p(2u) + i];
}

// params: 0 n, 1 g_off, 2 u_off, 3 da_off, 4 dg_off, 5 du_off
@compute @workgroup_size(256)
fn swiglu_bwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = gid(wg, nwg, lid);
    if (i >= p(0u)) {
        return;
    }
    let g = D[p(1u) + i];
    let u = D[p(2u) + i];
    let da = D[p(3u) + i];
    let sg = 1.0 / (1.0 + exp(-g));
    D[p(4u) + i] = da * u * sg * (1.0 + g * (1.0 - sg));
    D[p(5u) + i] = da * g * sg;
}

// ---------------------------------------------------------------- softmax
// params: 0 rows, 1 C, 2 x_off, 3 y_off
@compute @workgroup_size(64)
fn softmax_fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = row_of(wg, nwg);
    if (row >= p(0u)) {
        return;
    }
    let c = p(1u);
    let x0 = p(2u) + row * c;
    var m = -3.0e38;
    for (var i = lid; i < c; i += 64u) {
        m = max(m, D[x0 + i]);
    }
    m = reduce_max(m, lid);
    var s = 0.0;
    for (var i = lid; i < c; i += 64u) {
        s += exp(D[x0 + i] - m);
    }
    s = reduce_sum(s, lid);
    for (var i = lid; i < c; i += 64u) {
        D[p(3u) + row * c + i] = exp(D[x0 + i] - m) / s;
    }
}

// dx = y · (dy − Σ y·dy)
// params: 0 rows, 1 C, 2 y_off, 3 dy_off, 4 dx_off
@compute @workgroup_size(64)
fn softmax_bwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = row_of(wg, nwg);
    if (row >= p(0u)) {
        return;
    }
    let c = p(1u);
    var s = 0.0;
    for (var i = lid; i < c; i += 64u) {
        s += D[p(2u) + row * c + i] * D[p(3u) + row * c + i];
    }
    s = reduce_sum(s, lid);
    for (var i = lid; i < c; i += 64u) {
        D[p(4u) + row * c + i] = D[p(2u) + row * c + i] * (D[p(3u) + row * c + i] - s);
    }
}

// Cross-entropy per row: loss = logsumexp(x) − x[target]; with a gradient
// offset also dx = (softmax(x) − onehot) · scale (scale = 1/N for the mean).
// params: 0 rows, 1 V, 2 x_off, 3 tgt_off (U), 4 loss_off, 5 dx_off, 6 scale
@compute @workgroup_size(64)
fn xent(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = row_of(wg, nwg);
    if (row >= p(0u)) {
        return;
    }
    let v = p(1u);
    let x0 = p(2u) + row * v;
    var m = -3.0e38;
    for (var i = lid; i < v; i += 64u) {
        m = max(m, D[x0 + i]);
    }
    m = reduce_max(m, lid);
    var s = 0.0;
    for (var i = lid; i < v; i += 64u) {
        s += exp(D[x0 + i] - m);
    }
    s = reduce_sum(s, lid);
    let lse = m + log(s);
    let tgt = U[p(3u) + row];
    if (lid == 0u) {
        D[p(4u) + row] = lse - D[x0 + tgt];
    }
    if (p(5u) != NONE) {
        let scale = pf(6u);
        for (var i = lid; i < v; i += 64u) {
            var g = exp(D[x0 + i] - lse);
            if (i == tgt) {
                g -= 1.0;
            }
            D[p(5u) + row * v + i] = g * scale;
        }
    }
}

// Greedy next token: argmax of each row (lowest index on ties) into U.
// params: 0 rows, 1 V, 2 x_off, 3 row_stride, 4 out_off (U)
@compute @workgroup_size(64)
fn argmax(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = row_of(wg, nwg);
    if (row >= p(0u)) {
        return;
    }
    let x0 = p(2u) + row * p(3u);
    var best = -3.4e38;
    var bi = NONE;
    for (var i = lid; i < p(1u); i += 64u) {
        let v = D[x0 + i];
        if (v > best) {
            best = v;
            bi = i;
        }
    }
    red[lid] = best;
    red_i[lid] = bi;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            let ov = red[lid + s];
            let oi = red_i[lid + s];
            if (ov > red[lid] || (ov == red[lid] && oi < red_i[lid])) {
                red[lid] = ov;
                red_i[lid] = oi;
            }
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        U[p(4u) + row] = red_i[0];
    }
}

// ---------------------------------------------------------------- MoE
// Top-k routing: pos[n, e] = 0 for the k most probable experts of token n
// (the lower index wins a tie, as on the CPU), NONE otherwise.
// params: 0 N, 1 E, 2 k, 3 probs_off, 4 pos_off (U, N·E)
@compute @workgroup_size(256)
fn moe_topk(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n = gid(wg, nwg, lid);
    let e_n = p(1u);
    if (n >= p(0u)) {
        return;
    }
    let pos = p(4u) + n * e_n;
    for (var e = 0u; e < e_n; e++) {
        U[pos + e] = NONE;
    }
    for (var j = 0u; j < p(2u); j++) {
        var best = -1.0;
        var be = 0u;
        for (var e = 0u; e < e_n; e++) {
            let v = D[p(3u) + n * e_n + e];
            if (U[pos + e] == NONE && v > best) {
                best = v;
                be = e;
            }
        }
        U[pos + be] = 0u;
    }
}

// One thread per expert numbers its tokens in token order: slot idx[e, i]
// holds the i-th token of expert e, pos[n, e] the slot of token n, cnt[e]
// how many.
// params: 0 N, 1 E, 2 pos_off, 3 idx_off (U, E·N), 4 cnt_off (U, E)
@compute @workgroup_size(256)
fn moe_compact(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let e = gid(wg, nwg, lid);
    let e_n = p(1u);
    let n_n = p(0u);
    if (e >= e_n) {
        return;
    }
    var c = 0u;
    for (var n = 0u; n < n_n; n++) {
        let at = p(2u) + n * e_n + e;
        if (U[at] != NONE) {
            U[at] = c;
            U[p(3u) + e * n_n + c] = n;
            c++;
        }
    }
    U[p(4u) + e] = c;
}

// out[e, i, :] = w · x[idx[e, i], :] for i < cnt[e], 0 beyond (so padded
// rows contribute nothing downstream); w = probs[n, e] or 1.
// params: 0 N, 1 E, 2 C, 3 x_off, 4 out_off, 5 idx_off, 6 cnt_off, 7 probs_off
@compute @workgroup_size(256)
fn moe_gather(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let j = gid(wg, nwg, lid);
    let n_n = p(0u);
    let c_n = p(2u);
    if (j >= p(1u) * n_n * c_n) {
        return;
    }
    let c = j % c_n;
    let i = (j / c_n) % n_n;
    let e = j / (c_n * n_n);
    var out = 0.0;
    if (i < U[p(6u) + e]) {
        let n = U[p(5u) + e * n_n + i];
        var w = 1.0;
        if (p(7u) != NONE) {
            w = D[p(7u) + n * p(1u) + e];
        }
        out = w * D[p(3u) + n * c_n + c];
    }
    D[p(4u) + j] = out;
}

// out[n, :] = beta · out[n, :] + Σ_{e chosen} w · ye[e, pos[n, e], :]
// params: 0 N, 1 E, 2 C, 3 ye_off, 4 out_off, 5 pos_off, 6 probs_off, 7 beta
@compute @workgroup_size(256)
fn moe_combine(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let j = gid(wg, nwg, lid);
    let n_n = p(0u);
    let e_n = p(1u);
    let c_n = p(2u);
    if (j >= n_n * c_n) {
        return;
    }
    let c = j % c_n;
    let n = j / c_n;
    var acc = 0.0;
    for (var e = 0u; e < e_n; e++) {
        let slot = U[p(5u) + n * e_n + e];
        if (slot != NONE) {
            var w = 1.0;
            if (p(6u) != NONE) {
                w = D[p(6u) + n * e_n + e];
            }
            acc += w * D[p(3u) + (e * n_n + slot) * c_n + c];
        }
    }
    let idx = p(4u) + j;
    if (pf(7u) != 0.0) {
        acc += pf(7u) * D[idx];
    }
    D[idx] = acc;
}

// dprobs[n, e] = dout[n] · ye[e, pos[n, e]] for chosen experts, else 0.
// params: 0 N, 1 E, 2 C, 3 dout_off, 4 ye_off, 5 pos_off, 6 dp_off
@compute @workgroup_size(256)
fn moe_dprob(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let j = gid(wg, nwg, lid);
    let n_n = p(0u);
    let e_n = p(1u);
    let c_n = p(2u);
    if (j >= n_n * e_n) {
        return;
    }
    let e = j % e_n;
    let n = j / e_n;
    let slot = U[p(5u) + j];
    var acc = 0.0;
    if (slot != NONE) {
        for (var c = 0u; c < c_n; c++) {
            acc = fma(D[p(3u) + n * c_n + c], D[p(4u) + (e * n_n + slot) * c_n + c], acc);
        }
    }
    D[p(6u) + j] = acc;
}

// ---------------------------------------------------------------- AdamW
// Decoupled weight decay (Loshchilov & Hutter 2019), as the CPU step:
// p ← p − lr·(m̂ / (sqrt(v̂) + eps) + wd·p).
// params: 0 n, 1 p_off, 2 g_off, 3 m_off, 4 v_off, 5 lr, 6 b1, 7 b2,
// 8 eps, 9 wd, 10 c1, 11 c2
@compute @workgroup_size(256)
fn adamw(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = gid(wg, nwg, lid);
    if (i >= p(0u)) {
        return;
    }
    let g = D[p(2u) + i];
    let b1 = pf(6u);
    let b2 = pf(7u);
    let m = b1 * D[p(3u) + i] + (1.0 - b1) * g;
    let v = b2 * D[p(4u) + i] + (1.0 - b2) * g * g;
    D[p(3u) + i] = m;
    D[p(4u) + i] = v;
    let update = (m / pf(10u)) / (sqrt(v / pf(11u)) + pf(8u));
    let w = D[p(1u) + i];
    D[p(1u) + i] = w - pf(5u) * (update + pf(9u) * w);
}

// ---------------------------------------------------------------- STREAM
// a = b + s·c. params: 0 n, 1 a_off, 2 b_off, 3 c_off, 4 s
@compute @workgroup_size(256)
fn triad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = gid(wg, nwg, lid);
    if (i >= p(0u)) {
        return;
    }
    D[p(1u) + i] = D[p(2u) + i] + pf(4u) * D[p(3u) + i];
}
