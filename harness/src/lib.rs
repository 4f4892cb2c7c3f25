//! capbench: the harness around a measurement. The binary (`main.rs`) only
//! glues these modules together; the map is in docs/architecture.md and the
//! principles in docs/design.md.

pub mod analysis;
pub mod baseline;
pub mod caps;
pub mod claims;
pub mod cli;
pub mod error;
pub mod gpu;
pub mod meter;
pub mod profiles;
pub mod report;
pub mod results;
pub mod runner;
pub mod stats;
pub mod suite;
pub mod worker;
