//! Reports: formatting only, over data `stats`/`runner` already computed.

pub mod table;
