//! Aggregation speed probe for development: `cargo run --release --example profile_aggregate
//! -- SERIES.i64 TIMES.i64 VALUES.f64 WINDOW_MS [STAT,STAT...]` (raw little-endian files;
//! every statistic unless some are named).
use bocage_core::aggregate::{aggregate_stats, Stats};
use std::time::Instant;

fn read<T>(path: &str, f: impl Fn([u8; 8]) -> T) -> Vec<T> {
    std::fs::read(path)
        .expect("read")
        .chunks_exact(8)
        .map(|c| f(c.try_into().unwrap()))
        .collect()
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let s = read(&a[1], i64::from_le_bytes);
    let t = read(&a[2], i64::from_le_bytes);
    let v = read(&a[3], f64::from_le_bytes);
    let w: i64 = a[4].parse().unwrap();
    let stats = a.get(5).map_or(Stats::ALL, |x| {
        Stats::from_names(x.split(',').filter(|n| !n.is_empty())).unwrap()
    });
    // wall time, and CPU time of the process (all threads: the work done, which a busy
    // machine disturbs less than the wall time)
    let cpu = || {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid clock id and a valid pointer
        unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
    };
    let (mut walls, mut cpus) = (Vec::new(), Vec::new());
    let mut rows = 0;
    for _ in 0..30 {
        let (t0, c0) = (Instant::now(), cpu());
        let o = aggregate_stats(&s, &t, &v, w, stats).unwrap();
        walls.push(t0.elapsed().as_secs_f64() * 1e3);
        cpus.push((cpu() - c0) * 1e3);
        rows = o.len();
    }
    walls.sort_by(f64::total_cmp);
    cpus.sort_by(f64::total_cmp);
    println!(
        "{rows} windows; wall ms min {:.1} median {:.1}; cpu ms min {:.1} median {:.1}",
        walls[0], walls[15], cpus[0], cpus[15]
    );
}
