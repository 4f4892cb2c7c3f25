//! Analysis over recorded runs: a case's result from its worker processes
//! (aggregate, energy, memory); comparisons for the regression gate and the
//! A/A noise calibration it adapts to; ceilings, roofline and projections;
//! the frontiers and roofs reports draw. Pure functions over result data.

pub mod aggregate;
pub mod calibration;
pub mod ceilings;
pub mod changepoint;
pub mod compare;
pub mod energy;
pub mod engines;
pub mod fit;
#[cfg(test)]
pub mod fixtures;
pub mod history;
pub mod memory;
pub mod paired;
pub mod pareto;
pub mod projection;
pub mod roofline;
pub mod spec_sheet;
