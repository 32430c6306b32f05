//! Aggregation speed probe for development: `cargo run --release --example profile_aggregate
//! -- SERIES.i64 TIMES.i64 VALUES.f64 WINDOW_MS` (raw little-endian files).
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
    for _ in 0..30 {
        let t0 = Instant::now();
        let o = bocage_core::aggregate::aggregate(&s, &t, &v, w).unwrap();
        print!("{:.1}ms/{} ", t0.elapsed().as_secs_f64() * 1e3, o.len());
    }
    println!();
}
