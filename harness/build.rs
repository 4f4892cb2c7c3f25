//! Records how this binary was built (rustc, git commit, profile, target
//! features) so every result file can say what produced it.

use std::process::Command;

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = run(&rustc, &["-V"]).unwrap_or_else(|| "unknown".into());
    let commit = run("git", &["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = run("git", &["status", "--porcelain", "--untracked-files=no"])
        .map(|s| if s.is_empty() { "clean" } else { "dirty" })
        .unwrap_or("unknown");
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into());
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    println!("cargo:rustc-env=CAPBENCH_RUSTC_VERSION={rustc_version}");
    println!("cargo:rustc-env=CAPBENCH_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=CAPBENCH_GIT_STATE={dirty}");
    println!("cargo:rustc-env=CAPBENCH_BUILD_PROFILE={profile}");
    println!("cargo:rustc-env=CAPBENCH_TARGET_FEATURES={features}");
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/index");
    println!("cargo:rerun-if-changed=build.rs");
    cuda_rpath();
}

/// A CUDA build with the PyPI toolkit (scripts/build-cuda.sh sets
/// CUDA_ROOT) finds that toolkit's cuBLAS, cuRAND and NVRTC at run time
/// through an rpath. The driver's libcuda.so.1 is not there (only a
/// link-time stand-in in lib/stubs), so the system's driver is loaded.
fn cuda_rpath() {
    println!("cargo:rerun-if-env-changed=CUDA_ROOT");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    let candle_cuda = std::env::var_os("CARGO_FEATURE_CUDA").is_some();
    let llamacpp_cuda = std::env::var_os("CARGO_FEATURE_LLAMACPP_CUDA").is_some();
    if !linux || !(candle_cuda || llamacpp_cuda) {
        return;
    }
    let Ok(root) = std::env::var("CUDA_ROOT") else {
        return;
    };
    let lib = std::path::Path::new(&root).join("lib");
    if !lib.is_dir() {
        return;
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    // llama-cpp-sys-2 links cuBLAS statically on Linux (cublas_static,
    // cublasLt_static, culibos), which NVIDIA's full toolkit ships and the
    // PyPI wheels do not: there build-cuda.sh gives it empty stand-ins for
    // those archives, and the real, shared cuBLAS is linked here instead
    // (after every rlib, so llama.cpp's references find it).
    if llamacpp_cuda && !lib.join("libcublas_static.a").exists() {
        println!("cargo:rustc-link-search=native={}", lib.display());
        println!("cargo:rustc-link-lib=dylib=cublas");
        println!("cargo:rustc-link-lib=dylib=cublasLt");
    }
}
