//! Column codec speed probe for development (and for callgrind, with one side only):
//! `cargo run --release --example profile_codec -- FILE f64|i64 [BATCH] [REPS] [encode|decode|both]`
//! (FILE holds raw little-endian values). Not a benchmark of record: see native/bench/codec.py.
use bocage_core::column::{decode_values, encode_values, ValuesRef};
use std::time::Instant;

/// Runs `body` `reps` times and prints ns/value and MB/s of raw input for `what`.
fn time(what: &str, n: usize, reps: usize, mut body: impl FnMut()) {
    let t = Instant::now();
    for _ in 0..reps {
        body();
    }
    let dt = t.elapsed().as_secs_f64() / reps as f64;
    println!(
        "{what} {:.2} ns/value, {:.0} MB/s",
        dt * 1e9 / n as f64,
        n as f64 * 8.0 / dt / 1e6
    );
}

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
    println!(
        "{n} values in batches of {batch} -> {:.3} bits/value",
        bytes as f64 * 8.0 / n as f64
    );
    let reps: usize = args
        .get(4)
        .map(|r| r.parse().unwrap())
        .unwrap_or((20_000_000 / n).max(3));
    let which = args.get(5).map_or("both", String::as_str);
    if which != "encode" {
        time("decode", n, reps, || {
            for e in &enc {
                std::hint::black_box(decode_values(std::hint::black_box(e)).unwrap());
            }
        });
    }
    if which != "decode" {
        time("encode", n, reps, || {
            for c in &chunks {
                std::hint::black_box(encode_values(std::hint::black_box(*c)));
            }
        });
    }
}
