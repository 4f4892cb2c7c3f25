// capbench kernel/gemm f32: C(m,n) = A(m,k) · B(k,n), row-major.
// A 64×64 output tile per workgroup, 16×16 threads, each thread a 4×4 block;
// A and B stream through workgroup memory in 16-wide slices along k.
// Out-of-range loads read zero and out-of-range stores are skipped, so any
// m, n, k works.

struct Dims {
    m: u32,
    n: u32,
    k: u32,
    pad: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> dims: Dims;

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;
const THREADS: u32 = 256u;

var<workgroup> a_tile: array<f32, 1024>; // (BM, BK)
var<workgroup> b_tile: array<f32, 1024>; // (BK, BN)

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * BM;
    let col0 = wg.x * BN;
    let tid = lid.y * 16u + lid.x;
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = 0.0;
    }
    for (var k0 = 0u; k0 < dims.k; k0 += BK) {
        for (var l = 0u; l < 4u; l++) {
            let idx = tid + l * THREADS;
            let r = idx / BK;
            let cc = idx % BK;
            let gr = row0 + r;
            let gc = k0 + cc;
            var v = 0.0;
            if (gr < dims.m && gc < dims.k) {
                v = a[gr * dims.k + gc];
            }
            a_tile[r * BK + cc] = v;
        }
        for (var l = 0u; l < 4u; l++) {
            let idx = tid + l * THREADS;
            let r = idx / BN;
            let cc = idx % BN;
            let gr = k0 + r;
            let gc = col0 + cc;
            var v = 0.0;
            if (gr < dims.k && gc < dims.n) {
                v = b[gr * dims.n + gc];
            }
            b_tile[r * BN + cc] = v;
        }
        workgroupBarrier();
        for (var p = 0u; p < BK; p++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                av[i] = a_tile[(lid.y * 4u + i) * BK + p];
                bv[i] = b_tile[p * BN + lid.x * 4u + i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] = fma(av[i], bv[j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let r = row0 + lid.y * 4u + i;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + lid.x * 4u + j;
            if (r < dims.m && col < dims.n) {
                c[r * dims.n + col] = acc[i * 4u + j];
            }
        }
    }
}
