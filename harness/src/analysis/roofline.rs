//! Roofline model (Williams, Waterman & Patterson, CACM 2009): attainable
//! FLOP/s = min(peak FLOP/s, arithmetic intensity × peak bandwidth).

/// FLOPs per byte moved; `None` when either count is missing or not positive.
pub fn arithmetic_intensity(flops: f64, bytes: f64) -> Option<f64> {
    (flops > 0.0 && bytes > 0.0 && flops.is_finite() && bytes.is_finite()).then_some(flops / bytes)
}

/// Attainable GFLOP/s at `intensity` FLOP/byte under the two ceilings.
pub fn attainable_gflops_per_s(
    intensity: f64,
    peak_gflops_per_s: f64,
    peak_gbytes_per_s: f64,
) -> f64 {
    peak_gflops_per_s.min(intensity * peak_gbytes_per_s)
}

/// What limits a case on the roofline: below the ridge point the bandwidth
/// roof, above it the compute roof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    Memory,
    Compute,
}

impl Bound {
    pub fn as_str(self) -> &'static str {
        match self {
            Bound::Memory => "memory",
            Bound::Compute => "compute",
        }
    }

    pub fn parse(s: &str) -> Option<Bound> {
        match s {
            "memory" => Some(Bound::Memory),
            "compute" => Some(Bound::Compute),
            _ => None,
        }
    }
}

/// The roof above a case of intensity `ai` (FLOP/byte) given the ridge point.
pub fn bound(ai: f64, ridge_flops_per_byte: f64) -> Bound {
    if ai < ridge_flops_per_byte {
        Bound::Memory
    } else {
        Bound::Compute
    }
}

/// Intensity where the bandwidth roof meets the compute roof (FLOP/byte).
pub fn ridge_point(peak_gflops_per_s: f64, peak_gbytes_per_s: f64) -> f64 {
    peak_gflops_per_s / peak_gbytes_per_s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roof_is_bandwidth_bound_below_the_ridge_and_flat_above() {
        assert_eq!(ridge_point(100.0, 10.0), 10.0);
        assert_eq!(attainable_gflops_per_s(2.0, 100.0, 10.0), 20.0);
        assert_eq!(attainable_gflops_per_s(50.0, 100.0, 10.0), 100.0);
        assert_eq!(arithmetic_intensity(2.0e9, 1.0e6), Some(2000.0));
        assert_eq!(arithmetic_intensity(1.0, 0.0), None);
        assert_eq!(bound(2.0, 10.0), Bound::Memory);
        assert_eq!(bound(50.0, 10.0), Bound::Compute);
    }
}
