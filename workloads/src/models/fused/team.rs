//! The threads of one decode step, kept together for the whole token: a
//! spinning barrier between the step's phases and tasks handed out first
//! come, first served. A rayon fork-join costs ~14 µs on the 2-vCPU VM (a
//! parked worker must be woken) against ~0.5 µs for a spinning barrier,
//! and the 1.1B shape's step had ~90 of them per token — llama.cpp's
//! threads likewise stay in the graph and meet at barriers.

use std::marker::PhantomData;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// A reusable barrier for `n` threads that spins, then yields (so a team
/// larger than the free cores still makes progress).
pub(super) struct Barrier {
    n: usize,
    count: AtomicUsize,
    generation: AtomicUsize,
}

impl Barrier {
    pub(super) fn new(n: usize) -> Barrier {
        Barrier {
            n,
            count: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
        }
    }

    /// Returns once all `n` threads have called it (in this generation).
    pub(super) fn wait(&self) {
        let g = self.generation.load(Ordering::Acquire);
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
            // Reset before release: a thread seeing the new generation
            // sees the count at zero.
            self.count.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == g {
            if spins < 1 << 16 {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// An f32 buffer the team writes in disjoint parts between barriers and
/// reads whole after one.
pub(super) struct Shared<'a> {
    ptr: *mut f32,
    len: usize,
    _buf: PhantomData<&'a mut [f32]>,
}

// SAFETY: access goes through `part` and `all`, whose callers keep writes
// disjoint and apart from reads by the team's barriers.
unsafe impl Send for Shared<'_> {}
unsafe impl Sync for Shared<'_> {}

impl<'a> Shared<'a> {
    pub(super) fn new(buf: &'a mut [f32]) -> Shared<'a> {
        Shared {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            _buf: PhantomData,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The first `n` elements as a buffer of their own.
    pub(super) fn prefix(&self, n: usize) -> Shared<'_> {
        assert!(n <= self.len, "{n} of {}", self.len);
        Shared {
            ptr: self.ptr,
            len: n,
            _buf: PhantomData,
        }
    }

    /// Elements `r`, to write.
    ///
    /// # Safety
    /// No other thread touches `r` until the next barrier.
    #[allow(clippy::mut_from_ref)]
    pub(super) unsafe fn part(&self, r: Range<usize>) -> &mut [f32] {
        assert!(
            r.start <= r.end && r.end <= self.len,
            "part {r:?} of {}",
            self.len
        );
        // SAFETY: in bounds (checked); exclusive by the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(r.start), r.end - r.start) }
    }

    /// The first `n` elements, to read.
    ///
    /// # Safety
    /// No thread writes them until the next barrier.
    pub(super) unsafe fn all(&self, n: usize) -> &[f32] {
        assert!(n <= self.len, "{n} of {}", self.len);
        // SAFETY: in bounds (checked); no writer by the caller's promise.
        unsafe { std::slice::from_raw_parts(self.ptr, n) }
    }
}

/// The tasks of each phase of a step, split into one contiguous segment
/// per thread. A thread takes its own segment's tasks from the front (a
/// thread streaming adjacent rows keeps the hardware prefetcher going:
/// tasks taken first come, first served, alternating 64-row chunks between
/// the threads, decoded ~3 % slower), then, when it runs dry, the others'
/// from the back: a thread slowed by a neighbour does not hold the team up.
pub(super) struct Claims {
    threads: usize,
    /// Per phase and segment: tasks taken from the front (high half) and
    /// from the back (low half).
    taken: Vec<AtomicU64>,
}

impl Claims {
    pub(super) fn new(phases: usize, threads: usize) -> Claims {
        Claims {
            threads,
            taken: (0..phases * threads).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The tasks of phase `phase` (of `n`) that thread `me` takes.
    pub(super) fn take(
        &self,
        phase: usize,
        n: usize,
        me: usize,
    ) -> impl Iterator<Item = usize> + '_ {
        let k = self.threads;
        let mut off = 0;
        std::iter::from_fn(move || {
            while off < k {
                let j = (me + off) % k;
                let (lo, hi) = (n * j / k, n * (j + 1) / k);
                let cell = &self.taken[phase * k + j];
                let mut cur = cell.load(Ordering::Relaxed);
                loop {
                    let (front, back) = ((cur >> 32) as usize, (cur & 0xffff_ffff) as usize);
                    if lo + front + back >= hi {
                        break;
                    }
                    let next = if off == 0 { cur + (1 << 32) } else { cur + 1 };
                    match cell.compare_exchange_weak(
                        cur,
                        next,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => return Some(if off == 0 { lo + front } else { hi - 1 - back }),
                        Err(now) => cur = now,
                    }
                }
                off += 1;
            }
            None
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every thread sees every other thread's writes of the phase before:
    /// three threads, many rounds, each round's sums checked after the
    /// barrier; every task of a phase taken exactly once.
    #[test]
    fn barrier_orders_phases_and_claims_split_tasks() {
        let n = 3;
        let rounds = 2000;
        let mut buf = vec![0f32; n];
        let (barrier, shared, claims) = (
            Barrier::new(n),
            Shared::new(&mut buf),
            Claims::new(rounds, n),
        );
        let taken: Vec<AtomicUsize> = (0..rounds * 7).map(|_| AtomicUsize::new(0)).collect();
        std::thread::scope(|s| {
            for t in 0..n {
                let (barrier, shared, claims, taken) = (&barrier, &shared, &claims, &taken);
                s.spawn(move || {
                    for r in 0..rounds {
                        // SAFETY: element t is this thread's alone here.
                        unsafe { shared.part(t..t + 1)[0] = (r * n + t) as f32 };
                        // 7 tasks over 3 segments, some threads late to
                        // their own: every task taken once all the same.
                        if (r + t) % 4 == 0 {
                            std::thread::yield_now();
                        }
                        for k in claims.take(r, 7, t) {
                            taken[r * 7 + k].fetch_add(1, Ordering::Relaxed);
                        }
                        barrier.wait();
                        // SAFETY: nobody writes until the next barrier.
                        let sum: f32 = unsafe { shared.all(n) }.iter().sum();
                        assert_eq!(sum, (r * n * n + n * (n - 1) / 2) as f32, "round {r}");
                        barrier.wait();
                    }
                });
            }
        });
        assert!(taken.iter().all(|c| c.load(Ordering::Relaxed) == 1));
    }
}
