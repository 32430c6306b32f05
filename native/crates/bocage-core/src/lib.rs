//! Bocage's native kernels in plain Rust: the frame codec and its column codecs, grouped
//! windowed aggregation and a mergeable quantile sketch. The Python bindings live in the
//! parent crate and only adapt arguments.
pub mod aggregate;
pub mod bits;
pub mod bytes;
pub mod column;
pub mod error;
pub mod floatcodec;
pub mod frame;
pub mod huffman;
pub mod intcodec;
pub mod kernels;
mod scratch;
pub mod sketch;
#[cfg(test)]
mod testutil;

pub use error::{Error, Result};
