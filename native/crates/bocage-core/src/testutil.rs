//! Helpers shared by the unit tests.

/// Reproducible pseudo-random `u64`s for the randomised tests: Marsaglia's xorshift64 from a
/// non-zero seed.
pub fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}
