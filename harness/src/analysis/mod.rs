//! Analysis over recorded runs: comparisons for the regression gate and the
//! A/A noise calibration it adapts to; the frontiers and roofs reports draw.
//! Pure functions over result data.

pub mod calibration;
pub mod compare;
pub mod fit;
pub mod pareto;
pub mod roofline;
