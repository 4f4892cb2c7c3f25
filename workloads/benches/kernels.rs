//! criterion benches of the kernels: `cargo bench -p capbench-workloads`.
//! Each id names the backend; `run_iter` synchronises the device before it
//! returns, so every clock read brackets finished work. These are for kernel
//! development; `capbench run` is the measurement of record (one process per
//! case, between-process CIs, verification first).

use capbench_workloads::{Backend, WgpuSelector, WorkloadSpec, prepare};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::Cpu];
    let wgpu = Backend::Wgpu(WgpuSelector::Best);
    if capbench_workloads::backend::wgpu::check_usable(WgpuSelector::Best).is_ok() {
        v.push(wgpu);
    } else {
        eprintln!("kernels bench: wgpu not usable here, benchmarking cpu only");
    }
    v
}

fn gemm(c: &mut Criterion) {
    for backend in backends() {
        let mut group = c.benchmark_group(format!("gemm/{backend}"));
        for name in [
            "kernel/gemm-f32-128",
            "kernel/gemm-f32-256",
            "kernel/gemm-bf16-256",
        ] {
            let spec = WorkloadSpec::parse(name).expect("valid workload name");
            let mut w = match prepare(&spec, &backend) {
                Ok(w) => w,
                Err(e) => {
                    eprintln!("skipping {name} on {backend}: {e}");
                    continue;
                }
            };
            let v = w.verify().expect("verification runs");
            assert!(v.passed, "{name} on {backend} fails verification: {v:?}");
            group.throughput(Throughput::Elements(spec.flops_per_iter() as u64));
            group.bench_function(name.trim_start_matches("kernel/"), |b| {
                b.iter(|| w.run_iter().expect("iteration runs"))
            });
        }
        group.finish();
    }
}

/// q4_0 matrix × vector at llama-2-7b's widths (4096 → 4096 and the
/// 11008-wide down projection): throughput in weight bytes, so criterion's
/// rate is the bandwidth the decode kernel reaches (compare with
/// `kernel/stream` on the same machine).
fn q4_matvec(c: &mut Criterion) {
    use capbench_workloads::models::q4::Q4Matrix;
    let mut group = c.benchmark_group("q4_0-matvec/cpu");
    for (rows, cols) in [(4096, 4096), (4096, 11008)] {
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 2654435761) % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        let q = Q4Matrix::quantize(&w, rows, cols).expect("cols % 32 == 0");
        drop(w);
        let x: Vec<f32> = (0..cols).map(|i| (i % 13) as f32 / 6.0 - 1.0).collect();
        group.throughput(Throughput::Bytes((rows * cols / 32 * 18) as u64));
        group.bench_function(format!("{rows}x{cols}"), |b| b.iter(|| q.matmul(&x, 1)));
    }
    group.finish();
}

use capbench_workloads::models::matvec::{Weights, matvec};
use capbench_workloads::models::zeroed::filled;

/// f16 matrix × vector at the decode shapes of tinyllama-1.1b and
/// llama-3.2-1b (attention 2048², FFN 5632 and 8192 wide, both directions,
/// and the LM heads), throughput in weight bytes. Each iteration walks
/// enough copies of the matrix to pass 256 MiB, so the rate is the one
/// decode sees from memory, not from the last-level cache.
fn f16_matvec(c: &mut Criterion) {
    use half::f16;
    dense_matvec(c, "f16-matvec/cpu", MATVEC_SHAPES, f16::from_f32, |w| {
        Weights::F16(w)
    });
}

/// As `f16_matvec`, f32 weights: the f32 decode format, and the tied LM
/// head that exported llama-3.2-1b files keep in f32 (128256 × 2048, 1 GiB)
/// next to quantized layers.
fn f32_matvec(c: &mut Criterion) {
    let shapes = [(2048, 2048), (5632, 2048), (128256, 2048)];
    dense_matvec(c, "f32-matvec/cpu", &shapes, |v| v, |w| Weights::F32(w));
}

const MATVEC_SHAPES: &[(usize, usize)] = &[
    (2048, 2048),
    (5632, 2048),
    (2048, 5632),
    (8192, 2048),
    (2048, 8192),
    (32000, 2048),
    (128256, 2048),
];

fn dense_matvec<T: Clone + Send + Sync>(
    c: &mut Criterion,
    name: &str,
    shapes: &[(usize, usize)],
    from: fn(f32) -> T,
    wrap: for<'a> fn(&'a [T]) -> Weights<'a>,
) {
    let mut group = c.benchmark_group(name);
    group.sample_size(20);
    let size = std::mem::size_of::<T>();
    for &(rows, cols) in shapes {
        let copies = (256usize << 20).div_ceil(rows * cols * size).max(1);
        let ws: Vec<Vec<T>> = (0..copies)
            .map(|k| {
                // As decode holds its weights: on huge pages (`rehomed`).
                let mut v = filled(rows * cols, from(0.0));
                for (i, e) in v.iter_mut().enumerate() {
                    *e = from((((i + k) * 2654435761) % 2001) as f32 / 1000.0 - 1.0);
                }
                v
            })
            .collect();
        let x: Vec<f32> = (0..cols).map(|i| (i % 13) as f32 / 6.0 - 1.0).collect();
        let mut y = vec![0f32; rows];
        group.throughput(Throughput::Bytes((copies * rows * cols * size) as u64));
        group.bench_function(format!("{rows}x{cols}"), |b| {
            b.iter(|| {
                for w in &ws {
                    matvec(wrap(w), cols, &x, &mut y);
                }
            })
        });
    }
    group.finish();
}

/// The training executor's weight products at `dense-small`'s shapes
/// (512 tokens, d_model 512, FFN 1408, vocab 8192), f32 `gemm` beside the
/// bf16 products (`models::bgemm`, this machine's path), in each of the
/// three layouts a step uses: forward (x · Wᵀ), backward to the input
/// (dy · W) and to the weight (dyᵀ · x). Throughput in flops.
fn train_products(c: &mut Criterion) {
    use capbench_workloads::models::{bgemm, gemm};
    eprintln!("bf16 products here: {}", bgemm::path());
    let mut group = c.benchmark_group("train-gemm/cpu");
    let n = 512;
    for (inp, out) in [(512, 512), (512, 1408), (1408, 512), (512, 8192)] {
        let fill = |len: usize, s: usize| -> Vec<f32> {
            (0..len)
                .map(|i| (((i + s) * 2654435761) % 2001) as f32 / 1000.0 - 1.0)
                .collect()
        };
        let (x, w, dy) = (fill(n * inp, 1), fill(out * inp, 2), fill(n * out, 3));
        let mut y = vec![0f32; n * out.max(inp) + out * inp];
        let cases = [
            (
                "fwd",
                (n, out, inp),
                gemm::View::rows(&x, inp),
                gemm::View::rows(&w, inp).t(),
            ),
            (
                "bwd-x",
                (n, inp, out),
                gemm::View::rows(&dy, out),
                gemm::View::rows(&w, inp),
            ),
            (
                "bwd-w",
                (out, inp, n),
                gemm::View::rows(&dy, out).t(),
                gemm::View::rows(&x, inp),
            ),
        ];
        for (what, dims, a, b) in cases {
            group.throughput(Throughput::Elements((2 * dims.0 * dims.1 * dims.2) as u64));
            let id = format!("{what}-{inp}x{out}");
            group.bench_function(format!("f32/{id}"), |bch| {
                bch.iter(|| gemm::matmul(dims, a, b, &mut y, 0, dims.1, false, true))
            });
            group.bench_function(format!("bf16/{id}"), |bch| {
                bch.iter(|| bgemm::matmul_bf16(dims, a, b, &mut y, 0, dims.1, false, true))
            });
        }
    }
    group.finish();
}

/// The fused prefill's f16 weight products (`models::fgemm`) at the
/// TinyLlama-1.1B shape's matrices for a 128-token prompt: 128 activation
/// rows × (rows × cols) f16 weights. Throughput in flops.
fn f16_gemm(c: &mut Criterion) {
    use capbench_workloads::models::{fgemm, matvec::Weights};
    use half::f16;
    let mut group = c.benchmark_group("f16-gemm/cpu");
    group.sample_size(20);
    let m = 128;
    for (rows, cols) in [(2048, 2048), (5632, 2048), (2048, 5632)] {
        let w: Vec<f16> = (0..rows * cols)
            .map(|i| f16::from_f32(((i * 2654435761) % 2001) as f32 / 1000.0 - 1.0))
            .collect();
        let x: Vec<f32> = (0..m * cols).map(|i| (i % 13) as f32 / 6.0 - 1.0).collect();
        let mut y = vec![0f32; m * rows];
        group.throughput(Throughput::Elements((2 * m * rows * cols) as u64));
        group.bench_function(format!("{m}x{rows}x{cols}"), |b| {
            b.iter(|| fgemm::matmul_into(Weights::F16(&w), cols, &x, &mut y, rows))
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    gemm,
    q4_matvec,
    f16_matvec,
    f32_matvec,
    f16_gemm,
    train_products
);
criterion_main!(benches);
