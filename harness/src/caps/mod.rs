//! Caps a worker runs under, standing in for a weaker machine: host memory
//! (a counting allocator with a hard limit, plus an RSS watch), CPU threads
//! and affinity, device memory, wgpu limit tiers, and on NVIDIA GPUs a power
//! limit and locked clocks through NVML.

pub mod size;
pub mod wgpu_limits;

pub mod alloc;
pub mod cpu;
pub mod gpu_compute;
pub mod rss;
