//! Analysis over recorded runs: comparisons for the regression gate and the
//! A/A noise calibration it adapts to. Pure functions over result data.

pub mod calibration;
pub mod compare;
