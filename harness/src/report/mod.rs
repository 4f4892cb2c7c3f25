//! Reports: formatting only, over data `stats`/`runner` already computed.

pub mod compare;
pub mod table;
