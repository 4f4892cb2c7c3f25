//! capbench: the harness around a measurement. The binary (`main.rs`) only
//! dispatches to `commands`; docs/architecture.md maps the layers below it and
//! docs/design.md states the principles.

pub mod analysis;
pub mod baseline;
pub mod caps;
pub mod claims;
pub mod cli;
pub mod commands;
pub mod error;
pub mod format;
pub mod gpu;
pub mod meter;
pub mod profiles;
pub mod report;
pub mod results;
pub mod runner;
pub mod stats;
pub mod suite;
pub mod worker;
