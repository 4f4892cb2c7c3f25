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

criterion_group!(benches, gemm);
criterion_main!(benches);
