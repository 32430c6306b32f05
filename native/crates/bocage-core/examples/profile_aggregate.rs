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
    for _ in 0..30 {
        let t0 = Instant::now();
        let o = aggregate_stats(&s, &t, &v, w, stats).unwrap();
        print!("{:.1}ms/{} ", t0.elapsed().as_secs_f64() * 1e3, o.len());
    }
    println!();
}
