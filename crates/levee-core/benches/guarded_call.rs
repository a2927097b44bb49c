//! ns per guarded call on the hot paths: the breaker's closed path (acquire + record success)
//! and a bulkhead acquire/release, single-threaded and with two threads contending for the
//! same breaker or bulkhead. Run: `cargo bench -p levee-core --bench guarded_call`.

use criterion::{criterion_group, criterion_main, Criterion};
use levee_core::breaker::{BreakerConfig, CircuitBreaker, State, WindowConfig, WindowKind};
use levee_core::bulkhead::{Acquire, Bulkhead, BulkheadConfig};
use levee_core::random::SplitMix64;
use levee_core::time::{Clock, ManualClock, Timestamp};
use levee_core::{Criticality, Outcome};
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn breaker(kind: WindowKind) -> Arc<CircuitBreaker> {
    let config = BreakerConfig {
        window: WindowConfig { kind, size: 10 },
        ..BreakerConfig::default()
    };
    Arc::new(CircuitBreaker::new("bench", config, Arc::new(SplitMix64::new(1))).expect("valid"))
}

fn closed_call(b: &CircuitBreaker, now: Timestamp) {
    if let Ok(permit) = b.acquire(now).result {
        black_box(b.record(permit, Outcome::Success, Duration::from_micros(300), now));
    }
}

fn bulkhead_call(b: &Bulkhead, now: Timestamp) {
    if let Acquire::Permitted(permit) = b.try_acquire(Criticality::Standard, now) {
        drop(black_box(permit));
    }
}

/// Runs `op` `iters` times on each of `threads` threads at once; returns wall time / iters.
fn contended<T: Send + Sync + 'static>(
    shared: Arc<T>,
    threads: usize,
    iters: u64,
    op: fn(&T, Timestamp),
) -> Duration {
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (shared, barrier) = (shared.clone(), barrier.clone());
            std::thread::spawn(move || {
                let clock = ManualClock::new(Timestamp::from_nanos(10_000_000_000));
                barrier.wait();
                for _ in 0..iters {
                    op(&shared, clock.now());
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for h in handles {
        h.join().expect("bench thread");
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let clock = ManualClock::new(Timestamp::from_nanos(10_000_000_000));
    for (name, kind) in [("count", WindowKind::Count), ("time", WindowKind::Time)] {
        let b = breaker(kind);
        c.bench_function(
            &format!("breaker_closed_path/{name}_window/1_thread"),
            |bench| bench.iter(|| closed_call(&b, clock.now())),
        );
        assert_eq!(
            b.state(),
            State::Closed,
            "the benchmark must measure the closed path"
        );
        let b = breaker(kind);
        c.bench_function(
            &format!("breaker_closed_path/{name}_window/2_threads"),
            |bench| bench.iter_custom(|iters| contended(b.clone(), 2, iters, closed_call)),
        );
        assert_eq!(
            b.state(),
            State::Closed,
            "the benchmark must measure the closed path"
        );
    }
    let config = BulkheadConfig {
        max_concurrent: 1_000,
        ..BulkheadConfig::default()
    };
    let bulkhead = Arc::new(Bulkhead::new(config.clone()).expect("valid"));
    c.bench_function("bulkhead_acquire_release/1_thread", |bench| {
        bench.iter(|| bulkhead_call(&bulkhead, clock.now()))
    });
    let bulkhead = Arc::new(Bulkhead::new(config).expect("valid"));
    c.bench_function("bulkhead_acquire_release/2_threads", |bench| {
        bench.iter_custom(|iters| contended(bulkhead.clone(), 2, iters, bulkhead_call))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
