//! Analytic energy for projections: FLOPs and bytes moved × energy per
//! operation from Horowitz, ISSCC 2014 (45 nm, 0.9 V; docs/reference/hardware.md §3 [E15,
//! E15b]). Not scaled to other process nodes: no source here gives a factor.
//! A lower bound of the arithmetic and DRAM traffic only — no control,
//! caches, static power — so it is never shown as a measurement.

use capbench_workloads::spec::DType;
use serde::{Deserialize, Serialize};

/// Horowitz 2014, picojoules: FP add / mult by width.
const FP32_ADD_PJ: f64 = 0.9;
const FP32_MULT_PJ: f64 = 3.7;
const FP16_ADD_PJ: f64 = 0.4;
const FP16_MULT_PJ: f64 = 1.1;
/// DRAM, 1.3–2.6 nJ per 64-bit access → per byte.
const DRAM_PJ_PER_BYTE_LOW: f64 = 1300.0 / 8.0;
const DRAM_PJ_PER_BYTE_HIGH: f64 = 2600.0 / 8.0;

pub const SOURCE: &str = "Horowitz, ISSCC 2014 (doi 10.1109/ISSCC.2014.6757323), 45 nm, 0.9 V: FP add+mult per 2 FLOPs, DRAM 1.3-2.6 nJ per 64 bit (docs/reference/hardware.md §3 [E15, E15b]); no node scaling";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalyticEnergy {
    /// Always `analytic`: a projection, not a measurement.
    pub source: super::EnergySource,
    pub pj_per_flop: f64,
    pub dram_pj_per_byte_low: f64,
    pub dram_pj_per_byte_high: f64,
    pub flops_per_iter: f64,
    pub bytes_per_iter: f64,
    /// Arithmetic + DRAM at the low DRAM figure, joules per iteration.
    pub energy_j_per_iter_low: f64,
    /// … at the high DRAM figure.
    pub energy_j_per_iter_high: f64,
    /// Which Horowitz width the dtype used (bf16 has no row: the 16-bit one).
    pub op_basis: String,
    pub reference: String,
}

/// One FLOP of a multiply-accumulate workload is half a multiply and half an
/// add (a GEMM's 2·M·N·K FLOPs are M·N·K of each).
pub fn estimate(flops: f64, bytes: f64, dtype: DType) -> AnalyticEnergy {
    let (add, mult, basis) = match dtype {
        DType::F32 => (FP32_ADD_PJ, FP32_MULT_PJ, "fp32 add/mult"),
        DType::F16 => (FP16_ADD_PJ, FP16_MULT_PJ, "fp16 add/mult"),
        DType::Bf16 => (
            FP16_ADD_PJ,
            FP16_MULT_PJ,
            "fp16 add/mult (Horowitz gives no bf16 figure)",
        ),
    };
    let pj_per_flop = (add + mult) / 2.0;
    let at = |dram: f64| (flops * pj_per_flop + bytes * dram) * 1e-12;
    AnalyticEnergy {
        source: super::EnergySource::Analytic,
        pj_per_flop,
        dram_pj_per_byte_low: DRAM_PJ_PER_BYTE_LOW,
        dram_pj_per_byte_high: DRAM_PJ_PER_BYTE_HIGH,
        flops_per_iter: flops,
        bytes_per_iter: bytes,
        energy_j_per_iter_low: at(DRAM_PJ_PER_BYTE_LOW),
        energy_j_per_iter_high: at(DRAM_PJ_PER_BYTE_HIGH),
        op_basis: basis.into(),
        reference: SOURCE.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_f32_256_on_known_figures() {
        // 2·256³ FLOPs, 3 · 256² · 4 bytes.
        let (f, b) = (2.0 * 256f64.powi(3), 3.0 * 256f64.powi(2) * 4.0);
        let a = estimate(f, b, DType::F32);
        assert!((a.pj_per_flop - 2.3).abs() < 1e-12);
        let low = (f * 2.3 + b * 162.5) * 1e-12;
        let high = (f * 2.3 + b * 325.0) * 1e-12;
        assert!((a.energy_j_per_iter_low / low - 1.0).abs() < 1e-12);
        assert!((a.energy_j_per_iter_high / high - 1.0).abs() < 1e-12);
        assert!((estimate(f, b, DType::Bf16).pj_per_flop - 0.75).abs() < 1e-12);
        assert_eq!(a.source, crate::meter::energy::EnergySource::Analytic);
    }
}
