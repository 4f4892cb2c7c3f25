//! Analysis over recorded runs: comparisons for the regression gate and the
//! A/A noise calibration it adapts to; ceilings, roofline and projections;
//! claims → verdicts; the frontiers and roofs reports draw. Pure functions
//! over result data.

pub mod calibration;
pub mod ceilings;
pub mod compare;
pub mod fit;
pub mod pareto;
pub mod projection;
pub mod roofline;
pub mod spec_sheet;
pub mod verdict;
#[cfg(test)]
mod verdict_tests;
