//! `capbench export-gguf`: a model shape's seeded weights written as a GGUF
//! file, for `run --model`.

use std::process::ExitCode;

use crate::cli::ExportGgufArgs;
use crate::error::HarnessError;

pub fn run(a: &ExportGgufArgs) -> Result<ExitCode, HarnessError> {
    use capbench_workloads::spec::{DEFAULT_SEED, WeightFmt};
    let cfg = capbench_workloads::models::shape(&a.model).ok_or_else(|| {
        HarnessError::usage(format!(
            "--model '{}' is not a model shape; see `capbench list workloads`",
            a.model
        ))
    })?;
    let format = WeightFmt::parse(&a.format)
        .filter(|f| *f != WeightFmt::Bf16)
        .ok_or_else(|| {
            HarnessError::usage(format!(
                "--format '{}': expected f32, f16, q8_0 or q4_0",
                a.format
            ))
        })?;
    if a.out.exists() {
        return Err(HarnessError::usage(format!(
            "{} exists; remove it or choose another --out",
            a.out.display()
        )));
    }
    let seed = a.seed.unwrap_or(DEFAULT_SEED);
    let bytes = capbench_workloads::models::gguf::export(&cfg, seed, format, &a.out)
        .map_err(HarnessError::from)?;
    println!("{}", a.out.display());
    eprintln!(
        "wrote {} ({bytes} bytes): {} in {}, seed {seed:#x}; decode it with `capbench run --model {}`",
        a.out.display(),
        cfg.name,
        format.as_str(),
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
