//! Encoder speed probe for development:
//! `cargo run --release --example profile_encode -- FILE f64|i64 [BATCH] [REPS]`
//! (FILE holds raw little-endian values). Not a benchmark of record: see native/bench/codec.py.
use bocage_core::column::{encode_values, ValuesRef};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let raw = std::fs::read(&args[1]).expect("read");
    let batch: usize = args.get(3).map(|b| b.parse().unwrap()).unwrap_or(16384);
    let f: Vec<f64> = raw
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let i: Vec<i64> = raw
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let n = f.len();
    let chunks: Vec<ValuesRef> = if args[2] == "f64" {
        f.chunks(batch).map(ValuesRef::F64).collect()
    } else {
        i.chunks(batch).map(ValuesRef::I64).collect()
    };
    let enc: Vec<Vec<u8>> = chunks.iter().map(|c| encode_values(*c)).collect();
    let bytes: usize = enc.iter().map(|e| e.len()).sum();
    let reps: usize = args
        .get(4)
        .map(|r| r.parse().unwrap())
        .unwrap_or((20_000_000 / n).max(3));
    let t = Instant::now();
    for _ in 0..reps {
        for c in &chunks {
            std::hint::black_box(encode_values(std::hint::black_box(*c)));
        }
    }
    let dt = t.elapsed().as_secs_f64() / reps as f64;
    println!(
        "{n} values in batches of {batch} -> {:.3} bits/value; encode {:.2} ns/value, {:.0} MB/s",
        bytes as f64 * 8.0 / n as f64,
        dt * 1e9 / n as f64,
        n as f64 * 8.0 / dt / 1e6
    );
}
