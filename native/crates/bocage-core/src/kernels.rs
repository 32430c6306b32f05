//! Which optional instruction-set kernels may run. Kernels picked at run time (BMI1+BMI2
//! Huffman decoding, AVX2+FMA and AVX-512 DECK values) ask here before the processor:
//! outside tests every tier is allowed, and tests cap it to run the plainer kernels on a
//! processor that has the wider ones, and compare them.

/// Instruction-set tiers, plainest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    /// baseline x86-64, or another architecture
    Portable,
    /// AVX2, FMA, BMI1, BMI2
    Avx2,
    /// AVX-512 F and DQ
    Avx512,
}

/// Whether kernels of tier `t` may run (if the processor has the instructions).
#[cfg(not(test))]
#[inline(always)]
pub fn allowed(_t: Tier) -> bool {
    true
}

#[cfg(test)]
thread_local! {
    static CAP: std::cell::Cell<Tier> = const { std::cell::Cell::new(Tier::Avx512) };
}

/// Whether kernels of tier `t` may run (if the processor has the instructions).
#[cfg(test)]
pub fn allowed(t: Tier) -> bool {
    t <= CAP.with(|c| c.get())
}

/// Turns kernels above tier `t` off (on this thread), until set again.
#[cfg(test)]
pub fn set_cap(t: Tier) {
    CAP.with(|c| c.set(t));
}

/// Runs `f` with kernels above tier `t` turned off (on this thread).
#[cfg(test)]
pub fn capped<R>(t: Tier, f: impl FnOnce() -> R) -> R {
    let before = CAP.with(|c| c.replace(t));
    let r = f();
    set_cap(before);
    r
}
