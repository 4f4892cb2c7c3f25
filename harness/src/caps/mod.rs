//! Caps a worker runs under, standing in for a weaker machine: host memory
//! (a counting allocator with a hard limit, plus an RSS watch), CPU threads
//! and affinity, device memory and wgpu limit tiers.

pub mod size;
pub mod wgpu_limits;

pub mod alloc;
pub mod cpu;
pub mod rss;
