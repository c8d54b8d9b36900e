//! Bytes held per open session by the sessionizer's state, measured with a counting
//! allocator: `cargo bench -p exatom-benches --bench session_memory`. Figures go to
//! BENCHMARKS.md. Not a criterion bench: it measures space, not time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use exatom_benches::{anon_event, T0};
use exatom_sessionizer::rules::PartitionState;

/// The system allocator, counting the bytes it holds.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
// The stated exception to the workspace's `unsafe_code` lint (benches/Cargo.toml): every
// call forwards to the system allocator with the same arguments.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        HELD.fetch_add(new_size, Ordering::Relaxed);
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn main() {
    const SESSIONS: u64 = 200_000;
    println!("open sessions: {SESSIONS}, one visitor each, events one second apart");
    for events in [1u64, 5, 10, 20] {
        let before = HELD.load(Ordering::Relaxed);
        let mut state = PartitionState::new(300_000);
        let mut offset = 0;
        for i in 0..events {
            for v in 0..SESSIONS {
                state
                    .place(&anon_event(v, i, T0 + i as i64 * 1000), offset, T0)
                    .expect("fixture ids are canonical");
                offset += 1;
            }
        }
        assert_eq!(state.open_sessions() as u64, SESSIONS);
        let held = HELD.load(Ordering::Relaxed) - before;
        println!(
            "{events:>3} events per session: {:>5} bytes per open session",
            held as u64 / SESSIONS
        );
        drop(state);
    }
}
