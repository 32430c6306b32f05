//! Float64 column codec (tags 0x40..0x7f). Every strategy is lossless on the bit pattern.
//!
//! * `0x40` RAW: `n` little-endian IEEE-754 binary64.
//! * `0x41` CONST: one binary64, repeated.
//! * `0x42` DEC (decimals with one exponent): byte `e` (0..=18), varint `x`, then `x` exceptions
//!   (varint position gap, 8 raw bytes), then an integer column of `n` mantissas `m`; every
//!   non-exception value is `(m as f64) / 10^e` (one correctly rounded division).
//! * `0x43` DECK (decimals, exponent per value): varint byte length of an integer column of
//!   `n` exponents `k`, that column, then an integer column of `n` mantissas; `k <= 18`:
//!   value `(m as f64) / 10^k`; `k == 19`: `m` is the value's bit pattern.
//! * `0x44` RUNS: varint `r` (runs), varint `u` (distinct values), varint byte length + a float
//!   column (no RUNS inside) of the `u` distinct values, varint byte length + an integer column
//!   of `r` dictionary indices, then an integer column of `r` run lengths (each >= 1, summing
//!   to `n`).
//! * `0x45` DECJ (decimals, exponent per value, coded jointly with the mantissa's length): a
//!   Huffman table over symbols `65 k + b` (`b` the bit length of `zigzag(m)`), the byte
//!   lengths of the first three of four bit streams, then the streams: value `i` in stream
//!   `i % 4`, as its symbol's code and the `b - 1` bits of `zigzag(m)` below its top bit
//!   (none for `b <= 1`); values as in DECK.
use crate::bits::BitWriter;
use crate::bytes::{put_varint, unzigzag, zigzag, Reader};
use crate::error::{Error, Result};
use crate::huffman;
use crate::intcodec::{
    check_stream_ends, decode_ints, decode_ints_into, decode_ints_map, encode_ints_within,
    finish_streams, stream_ends, stream_writers, window,
};
use crate::scratch::{Reused, Scratch};
use std::mem::MaybeUninit;

pub const F_RAW: u8 = 0x40;
pub const F_CONST: u8 = 0x41;
pub const F_DEC: u8 = 0x42;
pub const F_DECK: u8 = 0x43;
pub const F_RUNS: u8 = 0x44;
pub const F_DECJ: u8 = 0x45;
/// DECJ symbols: `DECJ_LENS k + b` for exponent `k` (0..=19) and bit length `b` (0..=64).
const DECJ_LENS: usize = 65;
const DECJ_ALPHABET: usize = (K_RAW as usize + 1) * DECJ_LENS;
/// Mantissas longer than this many bits (over ten digits: more than a float32 prints) are
/// long decimals, whose mantissas other codings may code better by their differences.
const LONG_BITS: usize = 34;
const MAX_E: usize = 18;
/// Encoders look for decimals of at most this many places: beyond, a mantissa is about as
/// long as the float itself (and the search would cost more than it saves).
const SEARCH_E: usize = MAX_E;
const K_RAW: i64 = 19;

const POW10: [f64; MAX_E + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18,
];

/// 1.5 * 2^52: for |x| < 2^51, `(x + MAGIC) - MAGIC` is `x` rounded to an integer (ties to
/// even), and the bits of `m + MAGIC` for an integer `|m| < 2^51` are those of `MAGIC` plus `m`.
const MAGIC: f64 = 6755399441055744.0;
/// 2^51, where that trick stops being exact.
const TWO_51: f64 = 2251799813685248.0;

/// The mantissa of `v` at exponent `e`, if `(m as f64) / 10^e` gives `v` back bit for bit.
#[inline]
fn mantissa(v: f64, e: usize) -> Option<i64> {
    mantissa_with::<true>(v, e)
}

/// `mantissa`; with `EARLY`, most failures are found before the division (for searches,
/// where most exponents fail), without it every answer takes the division (for a column of
/// values known to be mostly decimals at `e`). The answer is the same.
#[inline(always)]
fn mantissa_with<const EARLY: bool>(v: f64, e: usize) -> Option<i64> {
    let p = v * POW10[e];
    let m = round_fast(p);
    // also refuses NaN
    if m.is_nan() || m.abs() >= 9.2e18 {
        return None;
    }
    // Cheap necessary condition, to skip the division on most failures: if `m / 10^e` rounds
    // to `v`, then `|m - v 10^e| <= |v| 10^e 2^-53` and the product `p` is within
    // `|p| 2^-53` of `v 10^e`, so `|m - p| <= |p| 2^-51` at most (2^-44 leaves a wide margin).
    // Zero and subnormal products fail this test exactly when the full check fails too.
    if EARLY && (m - p).abs() > p.abs() * (1.0 / 17592186044416.0) {
        return None;
    }
    let m = m as i64;
    ((m as f64) / POW10[e])
        .to_bits()
        .eq(&v.to_bits())
        .then_some(m)
}

/// Nearest integer (ties to even below 2^51, away from zero above, as `f64::round`; any
/// rounding is fine: callers verify). Inline throughout: `f64::round` is a library call on
/// baseline x86-64, and decimal searches reach products above 2^51 on every long decimal.
#[inline]
fn round_fast(x: f64) -> f64 {
    let a = x.abs();
    if a < TWO_51 {
        (x + MAGIC) - MAGIC
    } else if a < 4503599627370496.0 {
        // below 2^52 a double is a multiple of one half: truncate (exactly), then round a
        // half away from zero
        let t = (x as i64) as f64;
        if (x - t).abs() >= 0.5 {
            t + x.signum()
        } else {
            t
        }
    } else {
        // integral already (or infinite, or NaN)
        x
    }
}

/// `v` is an integer that fits an i64 exactly (and not -0.0, whose sign an i64 would lose).
#[inline]
fn is_small_integer(v: f64) -> bool {
    let a = v.abs();
    // below 2^51 the rounding trick is exact; above, a rare case, ask libm
    let integral = if a < TWO_51 {
        round_fast(v) == v
    } else {
        a < 9.2e18 && v == v.trunc()
    };
    integral && v.to_bits() != (-0.0f64).to_bits()
}

/// Smallest exponent at which `v` is an exact decimal.
#[inline]
fn min_exponent(v: f64) -> Option<(usize, i64)> {
    if is_small_integer(v) {
        return Some((0, v as i64));
    }
    (1..=SEARCH_E).find_map(|e| mantissa(v, e).map(|m| (e, m)))
}

pub fn encode_floats(v: &[f64], out: &mut Vec<u8>) {
    encode_floats_depth(v, out, true)
}

fn encode_floats_depth(v: &[f64], out: &mut Vec<u8>, allow_runs: bool) {
    let n = v.len();
    if n == 0 {
        out.push(F_RAW);
        return;
    }
    // Runs of repeated values (sensors that report the same reading again and again): their
    // starts are found once, as bit masks, and serve both the count here and RUNS. A single
    // run is a constant column (the pass replaces a separate all-equal check).
    // (a nested column, which never tries RUNS, does not take the buffers: the outer one
    // holds them, and an empty set of nine buffers would be made and put back for nothing)
    let mut scratch = allow_runs.then(|| Reused::take(&RUN_SCRATCH));
    let runs = if let Some(scratch) = scratch.as_mut() {
        run_starts(v, &mut scratch.starts)
    } else {
        let b0 = v[0].to_bits();
        if v.iter().all(|x| x.to_bits() == b0) {
            1
        } else {
            n + 1
        }
    };
    if runs == 1 {
        out.push(F_CONST);
        out.extend_from_slice(&v[0].to_bits().to_le_bytes());
        return;
    }
    let mut best: Vec<u8> = Vec::new();
    let consider = |cand: Vec<u8>, best: &mut Vec<u8>| {
        if best.is_empty() || cand.len() < best.len() {
            *best = cand;
        }
    };
    // RUNS is the first candidate, and runs that take at most two bits a value end the
    // search: per-value codings rarely beat them then, and trying DEC as well would take
    // several times as long as RUNS (on the shared sensor data, trying DEC as well would
    // save 0.9 % of train_sensors at 256 values, under 0.1 % elsewhere). Otherwise DEC
    // gets RUNS's size as its budget, and must be smaller to win.
    let try_runs = runs * 2 <= n;
    let short_runs = (n + 8) / 4;
    if let Some(scratch) = scratch.as_mut().filter(|_| try_runs) {
        if let Some(c) = encode_runs(v, scratch, runs, usize::MAX) {
            if c.len() <= short_runs {
                out.extend_from_slice(&c);
                return;
            }
            consider(c, &mut best);
        }
    }
    // Decimals: pick the exponent from a sample.
    let step = (n / 16).max(1);
    // (at most 31 samples: all of fewer than 32 values, else under 2 n / (n / 16))
    let mut kbuf = [0usize; 32];
    let mut nk = 0;
    for &x in v.iter().step_by(step) {
        if let Some((k, _)) = min_exponent(x) {
            kbuf[nk] = k;
            nk += 1;
        }
    }
    let ks = &mut kbuf[..nk];
    let sampled = n.div_ceil(step);
    // The dictionary of RUNS (a nested column) never tries DECK after DECJ: its few sorted
    // values made DECK's two integer columns a third of its time, and on the shared data and
    // the hash harness's random columns DECK won two dictionaries (by 2 and 3 bytes), both
    // inside RUNS candidates that lost: no column's bytes change.
    let deck = |top_level: TryDeck| {
        if allow_runs {
            top_level
        } else {
            TryDeck::Never
        }
    };
    if ks.len() * 4 >= sampled * 3 {
        ks.sort_unstable();
        let e = ks[(ks.len() * 9 / 10).min(ks.len() - 1)];
        let spread = ks.iter().filter(|&&k| k + 1 < e).count();
        // Decimals of very different lengths (e.g. values printed from float32) are cheaper with
        // an exponent per value; otherwise one exponent for all.
        let per_value = e >= 4 && spread * 4 > ks.len();
        // candidates give up as soon as they cannot beat the best so far (`consider` keeps
        // only a strictly smaller one), which changes no choice
        if per_value && !try_runs {
            // An exponent per value: DECJ alone (smaller than DEC and DECK on almost every
            // such column); DEC too where DECJ cannot code the column or finds long decimals
            // (whose mantissas DEC's differences may code better).
            let (deck, others) = encode_deck(v, budget(&best, n), deck(TryDeck::IfLong));
            if let Some(c) = deck {
                consider(c, &mut best);
            }
            if others {
                if let Some(Some(c)) = encode_dec(v, e, budget(&best, n)) {
                    consider(c, &mut best);
                }
            }
        } else {
            let dec = encode_dec(v, e, budget(&best, n));
            let dec_failed = dec.is_none();
            if let Some(Some(c)) = dec {
                consider(c, &mut best);
            }
            if dec_failed && !try_runs {
                if let (Some(c), _) = encode_deck(v, budget(&best, n), deck(TryDeck::Always)) {
                    consider(c, &mut best);
                }
            }
        }
    } else if !ks.is_empty() && !try_runs {
        if let (Some(c), _) = encode_deck(v, budget(&best, n), deck(TryDeck::Always)) {
            consider(c, &mut best);
        }
    }
    if best.is_empty() || best.len() > 8 * n {
        out.push(F_RAW);
        for &x in v {
            out.extend_from_slice(&x.to_bits().to_le_bytes());
        }
    } else {
        out.extend_from_slice(&best);
    }
}

/// Size a new candidate must stay under to be kept, in a column of `n` values: that of the
/// best one so far, and at most RAW's (which is kept over any candidate as large).
fn budget(best: &[u8], n: usize) -> usize {
    let raw = 1 + 8 * n;
    if best.is_empty() {
        raw
    } else {
        best.len().min(raw)
    }
}

/// A buffer kept by the thread whose contents survive between uses (see `crate::scratch`):
/// DECJ's tables, of which each use reads only entries it wrote first, and its symbol counts,
/// which each use leaves zeroed. Short columns then clear nothing.
struct Kept<T>(Vec<T>);

impl<T> Default for Kept<T> {
    fn default() -> Self {
        Kept(Vec::new())
    }
}

impl<T: 'static> Scratch for Kept<T> {
    fn reset(&mut self) {}

    fn oversized(&self) -> bool {
        // (at most 4,096 entries: the decoding table of the longest codes)
        false
    }
}

/// Longest DECJ code for a column of `n` values: its decoder fills a table of 2^len entries,
/// which short columns should not pay for.
fn decj_code_len(n: usize) -> u32 {
    (usize::BITS - n.leading_zeros()).clamp(9, huffman::MAX_CODE_LEN)
}

thread_local! {
    /// DECJ's symbol counts, code of each symbol and decoding table, kept by the thread
    /// between columns.
    static DECJ_HIST: std::cell::Cell<Kept<u32>> = const { std::cell::Cell::new(Kept(Vec::new())) };
    static DECJ_CODES: std::cell::Cell<Kept<(u32, u8)>> = const { std::cell::Cell::new(Kept(Vec::new())) };
    static DECJ_TABLE: std::cell::Cell<Kept<u32>> = const { std::cell::Cell::new(Kept(Vec::new())) };
}

thread_local! {
    /// Mantissas and exponents of the decimal codings (encoding and decoding), kept by the
    /// thread between columns.
    static MANTISSAS: std::cell::Cell<Vec<i64>> = const { std::cell::Cell::new(Vec::new()) };
    static EXPONENTS: std::cell::Cell<Vec<i64>> = const { std::cell::Cell::new(Vec::new()) };
}

/// DEC at exponent `e`: `None` when too many values are exceptions, `Some(None)` when the
/// column would take `budget` bytes or more. (The exceptions alone may show the latter before
/// the former is known only with a budget below RAW's size, i.e. after another candidate:
/// callers only tell the two apart when DEC is the first.)
fn encode_dec(v: &[f64], e: usize, budget: usize) -> Option<Option<Vec<u8>>> {
    let n = v.len();
    let mut ms = Reused::take(&MANTISSAS);
    let mut exc: Vec<(usize, u64)> = Vec::new();
    if !dec_mantissas(v, e, budget, &mut ms, &mut exc) {
        return if exc.len() * 8 > n { None } else { Some(None) };
    }
    let mut out = Vec::with_capacity(n * 2 + 16);
    out.push(F_DEC);
    out.push(e as u8);
    put_varint(&mut out, exc.len() as u64);
    let mut last = 0usize;
    for &(i, bits) in &exc {
        put_varint(&mut out, (i - last) as u64);
        out.extend_from_slice(&bits.to_le_bytes());
        last = i;
    }
    let rest = budget.saturating_sub(out.len());
    if !encode_ints_within(&ms, &mut out, rest) {
        return Some(None);
    }
    Some(Some(out))
}

/// DEC's mantissas at exponent `e` into `ms` (an exception repeats the mantissa before it)
/// and its exceptions into `exc` (position, bit pattern); `false` as soon as more than one
/// value in eight is an exception, or the exceptions alone make the column `budget` bytes or
/// more (see `too_many`). With AVX2 and FMA where the processor has them: four
/// values a step, each checked by a corrected product instead of a division (the same
/// answer, see `dec_mantissas_fma`).
fn dec_mantissas(
    v: &[f64],
    e: usize,
    budget: usize,
    ms: &mut Vec<i64>,
    exc: &mut Vec<(usize, u64)>,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::allowed(crate::kernels::Tier::Avx2)
        && std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
    {
        // SAFETY: the processor has these features (checked just above).
        return unsafe { dec_mantissas_fma(v, e, budget, ms, exc) };
    }
    dec_mantissas_from(v, 0, 0, e, budget, ms, exc)
}

/// `x` exceptions are too many for DEC in a column of `n` values: more than one in eight, or
/// at least `budget` bytes with the header (tag, exponent, count), the nine bytes at least of
/// each (position gap, bit pattern) and a byte at least of mantissas.
#[inline(always)]
fn too_many(x: usize, n: usize, budget: usize) -> bool {
    x * 8 > n || 4 + 9 * x >= budget
}

/// `dec_mantissas` from position `from` on (`prev`: the mantissa before it), one value at a
/// time.
#[inline(always)]
fn dec_mantissas_from(
    v: &[f64],
    from: usize,
    mut prev: i64,
    e: usize,
    budget: usize,
    ms: &mut Vec<i64>,
    exc: &mut Vec<(usize, u64)>,
) -> bool {
    for (i, &x) in v.iter().enumerate().skip(from) {
        // (exceptions are rare here: no early exit)
        let found = mantissa_with::<false>(x, e);
        if !push_mantissa(found, i, x, &mut prev, v.len(), budget, ms, exc) {
            return false;
        }
    }
    true
}

/// Appends value `i` (`x`) of a DEC column of `n` values: its mantissa if `found`, else an
/// exception (and `prev`, the mantissa before it, again); `false` when the exceptions are
/// `too_many`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn push_mantissa(
    found: Option<i64>,
    i: usize,
    x: f64,
    prev: &mut i64,
    n: usize,
    budget: usize,
    ms: &mut Vec<i64>,
    exc: &mut Vec<(usize, u64)>,
) -> bool {
    match found {
        Some(m) => {
            ms.push(m);
            *prev = m;
        }
        None => {
            exc.push((i, x.to_bits()));
            if too_many(exc.len(), n, budget) {
                return false;
            }
            ms.push(*prev);
        }
    }
    true
}

/// `dec_mantissas` four values a step (AVX2 and FMA). For a product `p = v 10^e` below 2^51
/// the mantissa is `round(p)` by the same rounding trick as `round_fast`, and the value is
/// exact when Markstein's corrected quotient `m / 10^e` (bit for bit the division, see
/// `deck_quotient_fma`) has its bit pattern; other products (larger, or NaN) are left to
/// `mantissa_with`, as is the tail.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dec_mantissas_fma(
    v: &[f64],
    e: usize,
    budget: usize,
    ms: &mut Vec<i64>,
    exc: &mut Vec<(usize, u64)>,
) -> bool {
    use std::arch::x86_64::*;
    let (b, y) = (_mm256_set1_pd(POW10[e]), _mm256_set1_pd(INV10_DECK[e]));
    let magic = _mm256_set1_pd(MAGIC);
    let magic_bits = _mm256_set1_epi64x(MAGIC.to_bits() as i64);
    let limit = _mm256_set1_pd(TWO_51);
    let magnitude = _mm256_castsi256_pd(_mm256_set1_epi64x(i64::MAX));
    let mut prev = 0i64;
    let mut quads = v.chunks_exact(4);
    for (g, q) in (&mut quads).enumerate() {
        // SAFETY: `q` holds four values (unaligned load).
        let x = unsafe { _mm256_loadu_pd(q.as_ptr()) };
        let p = _mm256_mul_pd(x, b);
        // (false for NaN)
        let small = _mm256_cmp_pd::<_CMP_LT_OQ>(_mm256_and_pd(p, magnitude), limit);
        let m = _mm256_sub_pd(_mm256_add_pd(p, magic), magic);
        // below 2^51, m + 1.5 2^52 is exact and its bits are those of 1.5 2^52 plus m
        let mi = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(m, magic)), magic_bits);
        let q2 = quotient4(m, b, y);
        let same = _mm256_castsi256_pd(_mm256_cmpeq_epi64(
            _mm256_castpd_si256(q2),
            _mm256_castpd_si256(x),
        ));
        let exact = _mm256_movemask_pd(_mm256_and_pd(same, small)) as u32;
        let small = _mm256_movemask_pd(small) as u32;
        let mut mant = [0i64; 4];
        // SAFETY: `mant` has room for the four words written (unaligned store).
        unsafe { _mm256_storeu_si256(mant.as_mut_ptr().cast(), mi) };
        if exact == 0b1111 {
            ms.extend_from_slice(&mant);
            prev = mant[3];
            continue;
        }
        for (j, &x) in q.iter().enumerate() {
            let found = if small >> j & 1 == 1 {
                (exact >> j & 1 == 1).then_some(mant[j])
            } else {
                mantissa_with::<false>(x, e)
            };
            if !push_mantissa(found, 4 * g + j, x, &mut prev, v.len(), budget, ms, exc) {
                return false;
            }
        }
    }
    dec_mantissas_from(
        v,
        v.len() - quads.remainder().len(),
        prev,
        e,
        budget,
        ms,
        exc,
    )
}

/// Whether `encode_deck` also tries DECK after DECJ.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum TryDeck {
    Never,
    /// when the mantissas are long
    IfLong,
    Always,
}

/// An exponent per value, coded by DECJ, and as `deck` says also by DECK (given DECJ's
/// size as its budget) to keep the smaller: `None` when too many
/// values are not short decimals, or when the column would take `budget` bytes or more. The
/// second result tells whether other codings are worth trying: when the values are not
/// short decimals, or their mantissas are long. DECK's integer columns can code the
/// differences of long, correlated mantissas (values DEC could not code), which DECJ codes
/// by their lengths alone; on short decimals of varied lengths (a sample calling for an
/// exponent per value) DECJ is smaller almost always, and alone several times faster.
fn encode_deck(v: &[f64], budget: usize, deck: TryDeck) -> (Option<Vec<u8>>, bool) {
    let mut ks = Reused::take(&EXPONENTS);
    let mut ms = Reused::take(&MANTISSAS);
    let mut hist = Reused::take(&DECJ_HIST);
    // (zeroed when new, and left zeroed by every use)
    hist.0.resize(DECJ_ALPHABET, 0);
    let Some(seen) = deck_search(v, &mut ks, &mut ms, &mut hist.0) else {
        return (None, true);
    };
    let (decj, long) = encode_decj(&ks, &ms, &mut hist.0, seen, budget);
    let with_deck = match deck {
        TryDeck::Never => false,
        TryDeck::IfLong => long,
        TryDeck::Always => true,
    };
    if !with_deck {
        return (decj, long);
    }
    let budget = decj.as_ref().map_or(budget, Vec::len);
    // (the integer coder may finish a column at or over its budget: the smaller is kept)
    let best = match (deck_columns(&ks, &ms, budget), decj) {
        (Some(d), Some(j)) => Some(if d.len() < j.len() { d } else { j }),
        (d, j) => d.or(j),
    };
    (best, long)
}

/// What `deck_search` saw of the DECJ symbols: the exponents used (one bit each), the OR of
/// the zigzagged mantissas (its length is the longest), and the bits below their top bits.
#[derive(Clone, Copy)]
struct Seen {
    kmask: u32,
    zor: u64,
    extra: u64,
}

/// DECJ of the exponents and mantissas found by `deck_search` (`None` when it would take
/// `budget` bytes or more), and whether more than one mantissa in eight is long (see
/// `LONG_BITS`); leaves `hist` zeroed. One table and one writing pass after the search's
/// counts, and no integer column to analyse: the exponent and the length of the mantissa
/// go together (a value's length follows from its magnitude and its exponent, so together
/// they cost fewer bits than apart).
fn encode_decj(
    ks: &[i64],
    ms: &[i64],
    hist: &mut [u32],
    Seen { kmask, zor, extra }: Seen,
    budget: usize,
) -> (Option<Vec<u8>>, bool) {
    let n = ks.len();
    // the histogram is read in the rows of the exponents used, up to the longest mantissa
    let top = (64 - zor.leading_zeros()) as usize;
    let mut syms = Vec::with_capacity(64);
    let mut counts = Vec::with_capacity(64);
    let mut rows = kmask;
    let mut long = 0usize;
    while rows != 0 {
        let k = rows.trailing_zeros() as usize;
        rows &= rows - 1;
        for (b, c) in hist[k * DECJ_LENS..=k * DECJ_LENS + top]
            .iter_mut()
            .enumerate()
        {
            if *c > 0 {
                syms.push((k * DECJ_LENS + b) as u32);
                counts.push(*c);
                if b > LONG_BITS {
                    long += *c as usize;
                }
                *c = 0;
            }
        }
    }
    let long = long * 8 > n;
    let lens = huffman::code_lengths_limited(counts.iter().copied(), decj_code_len(n));
    let bits = huffman::coded_bits(counts.iter().copied(), &lens) + extra;
    let mut out = Vec::with_capacity(bits.div_ceil(8) as usize + 4 * syms.len() + 16);
    out.push(F_DECJ);
    huffman::write_table(syms.iter().copied(), &lens, &mut out);
    if out.len() + bits.div_ceil(8) as usize >= budget {
        return (None, long);
    }
    // code of each symbol, by symbol (only used symbols are looked up, and written first)
    let mut lut = Reused::take(&DECJ_CODES);
    lut.0.resize(DECJ_ALPHABET, (0, 0));
    huffman::for_each_code(&lens, |i, code| lut.0[syms[i] as usize] = code);
    let lut: &[(u32, u8)] = &lut.0;
    #[inline(always)]
    fn put(bw: &mut BitWriter, k: i64, m: i64, lut: &[(u32, u8)]) {
        let z = zigzag(m);
        let b = 64 - z.leading_zeros();
        let (code, l) = lut[k as usize * DECJ_LENS + b as usize];
        let (code, l, e) = (code as u64, l as u32, b.saturating_sub(1));
        let low = z & ((1u64 << e) - 1);
        if l + e <= 57 {
            bw.write_small(code | (low << l), l + e);
        } else {
            bw.write(code, l);
            bw.write(low, e);
        }
    }
    // value `i` in stream `i % 4`, so that a decoder follows four streams at once
    let cap = bits.div_ceil(32) as usize + 16;
    let mut writers = stream_writers(4, cap);
    let mut quads = ks.chunks_exact(4).zip(ms.chunks_exact(4));
    for (k4, m4) in &mut quads {
        let [w0, w1, w2, w3] = &mut writers[..] else {
            unreachable!("four writers")
        };
        put(w0, k4[0], m4[0], lut);
        put(w1, k4[1], m4[1], lut);
        put(w2, k4[2], m4[2], lut);
        put(w3, k4[3], m4[3], lut);
    }
    let tail = ks.len() - ks.len() % 4;
    for (j, (&k, &m)) in ks[tail..].iter().zip(&ms[tail..]).enumerate() {
        put(&mut writers[j], k, m, lut);
    }
    finish_streams(writers, &mut out);
    (Some(out), long)
}

/// Reads the `n` exponents and mantissas of a DECJ payload (after its tag).
fn decode_decj(r: &mut Reader<'_>, n: usize, ks: &mut Vec<i64>, ms: &mut Vec<i64>) -> Result<()> {
    let dec = huffman::read_table(r, DECJ_ALPHABET)?;
    let (ends, body) = stream_ends(r, 4, "DECJ")?;
    // (every value takes a bit at least, but for a table of one symbol)
    if dec.bits > 0 && n > body.len().saturating_mul(8) {
        return Err(Error::corrupt("DECJ stream shorter than its values"));
    }
    // entry: exponent << 24 | (bit length > 0) << 16 | bits below the top one << 8 | the
    // code's length (every entry is written: the code is complete)
    let mut table = Reused::take(&DECJ_TABLE);
    table.0.resize(1usize << dec.bits, 0);
    dec.fill(&mut table.0, |i| {
        let s = dec.syms[i] as usize;
        let b = s % DECJ_LENS;
        let e = b.saturating_sub(1);
        (((s / DECJ_LENS) << 24) | (((b > 0) as usize) << 16) | (e << 8)) as u32
    });
    ks.clear();
    ms.clear();
    ks.resize(n, 0);
    ms.resize(n, 0);
    // bit offset of each stream's next value, all in the one body
    let mut off = [
        0,
        ends[0] as u64 * 8,
        ends[1] as u64 * 8,
        ends[2] as u64 * 8,
    ];
    let d = DecjStreams {
        body,
        table: &table.0,
        mask: (1u64 << dec.bits) - 1,
    };
    d.dispatch(&mut off, ks, ms);
    check_stream_ends(&off, &ends, 4, "DECJ")
}

/// The four streams of a DECJ payload and their decoding table.
struct DecjStreams<'a> {
    body: &'a [u8],
    table: &'a [u32],
    mask: u64,
}

impl DecjStreams<'_> {
    /// Decodes `ks.len()` values, value `i` from stream `i % 4` at bit offset `off[i % 4]`,
    /// compiled for BMI2 where the processor has it (shifts and masks by a register amount
    /// take fewer instructions), else for the baseline.
    fn dispatch(&self, off: &mut [u64; 4], ks: &mut [i64], ms: &mut [i64]) {
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::allowed(crate::kernels::Tier::Avx2)
            && std::is_x86_feature_detected!("bmi1")
            && std::is_x86_feature_detected!("bmi2")
        {
            // SAFETY: the processor has both features (checked just above).
            return unsafe { self.run_bmi2(off, ks, ms) };
        }
        self.run(off, ks, ms)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "bmi1,bmi2")]
    fn run_bmi2(&self, off: &mut [u64; 4], ks: &mut [i64], ms: &mut [i64]) {
        self.run(off, ks, ms)
    }

    #[inline(always)]
    fn run(&self, off: &mut [u64; 4], ks: &mut [i64], ms: &mut [i64]) {
        let mut kq = ks.chunks_exact_mut(4);
        let mut mq = ms.chunks_exact_mut(4);
        for (k4, m4) in (&mut kq).zip(&mut mq) {
            for j in 0..4 {
                (k4[j], m4[j]) = self.next(&mut off[j]);
            }
        }
        let (kr, mr) = (kq.into_remainder(), mq.into_remainder());
        for (j, (k, m)) in kr.iter_mut().zip(mr).enumerate() {
            (*k, *m) = self.next(&mut off[j]);
        }
    }

    /// The value at bit `off` (moved past it): from one window of 57 bits or more, its code
    /// and low bits together, unless they are longer.
    #[inline(always)]
    fn next(&self, off: &mut u64) -> (i64, i64) {
        let w = window(self.body, *off);
        let t = self.table[(w & self.mask) as usize];
        let (l, e) = (t & 0xff, (t >> 8) & 0xff);
        let total = l + e;
        let low = if total <= 57 {
            (w >> l) & ((1u64 << e) - 1)
        } else {
            decj_long_bits(self.body, *off + l as u64, e)
        };
        *off += total as u64;
        let z = ((((t >> 16) & 1) as u64) << e) | low;
        ((t >> 24) as i64, unzigzag(z))
    }
}

/// The `e` (more than 32) low bits of a long mantissa at bit `off`, in two reads.
#[cold]
#[inline(never)]
fn decj_long_bits(body: &[u8], off: u64, e: u32) -> u64 {
    let lo = window(body, off) & 0xffff_ffff;
    let hi = window(body, off + 32) & ((1u64 << (e - 32)) - 1);
    lo | (hi << 32)
}

/// The smallest exponent (see `min_exponent`) and its mantissa of every value of `v`
/// (`K_RAW` and the bit pattern for values that are not short decimals) into `ks` and `ms`, and their DECJ symbols counted into
/// `hist` (zeroed, of `DECJ_ALPHABET` counts); `None` (`hist` zeroed) when too many values
/// are not short decimals.
fn deck_search(v: &[f64], ks: &mut Vec<i64>, ms: &mut Vec<i64>, hist: &mut [u32]) -> Option<Seen> {
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::allowed(crate::kernels::Tier::Avx2)
        && std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
    {
        // SAFETY: the processor has these features (checked just above).
        return unsafe { deck_search_fma(v, ks, ms, hist) };
    }
    let mut s = Search::new(v.len(), ks, ms);
    for (i, &x) in v.iter().enumerate() {
        if i == 64 && s.too_many_raw() {
            hist.fill(0);
            return None;
        }
        s.push(x, min_exponent(x), hist);
    }
    Some(s.seen)
}

/// `deck_search`'s state: the values found so far and what DECJ needs of them.
struct Search<'a> {
    ks: &'a mut Vec<i64>,
    ms: &'a mut Vec<i64>,
    /// values that are not short decimals
    raw: usize,
    seen: Seen,
}

impl<'a> Search<'a> {
    fn new(n: usize, ks: &'a mut Vec<i64>, ms: &'a mut Vec<i64>) -> Self {
        ks.reserve(n);
        ms.reserve(n);
        Search {
            ks,
            ms,
            raw: 0,
            seen: Seen {
                kmask: 0,
                zor: 0,
                extra: 0,
            },
        }
    }

    /// Values that are not short decimals cost a long search each: the search gives up when
    /// they are half of the first 64.
    fn too_many_raw(&self) -> bool {
        self.raw * 2 > 64
    }

    /// Appends value `x`, with its exponent and mantissa if `found`, and counts its symbol.
    #[inline(always)]
    fn push(&mut self, x: f64, found: Option<(usize, i64)>, hist: &mut [u32]) {
        let (k, m) = match found {
            Some(km) => km,
            None => {
                self.raw += 1;
                (K_RAW as usize, x.to_bits() as i64)
            }
        };
        self.ks.push(k as i64);
        self.ms.push(m);
        let z = zigzag(m);
        let b = 64 - z.leading_zeros();
        hist[k * DECJ_LENS + b as usize] += 1;
        self.seen.kmask |= 1 << k;
        self.seen.zor |= z;
        self.seen.extra += b.saturating_sub(1) as u64;
    }
}

/// Exponents the vector search tries (values of more places are left to the scalar one).
#[cfg(target_arch = "x86_64")]
const VECTOR_E: usize = 10;

/// `deck_search` four values a step (AVX2 and FMA), with the same answers: for each value,
/// the smallest exponent `k` up to `VECTOR_E` whose product `v 10^k` passes `mantissa`'s
/// cheap necessary condition (below 2^51, within `|p| 2^-44` of an integer), then the exact
/// check of that one by Markstein's corrected quotient (bit for bit the division, see
/// `dec_mantissas_fma`). A smaller exponent cannot give an exact decimal (it would have
/// passed the condition), so a value that passes the check has its smallest exponent; the
/// others (no such `k`, an inexact one, or a product from 2^51 up) take the scalar search.
/// On float32 readings most values stop within a few exponents, four at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn deck_search_fma(
    v: &[f64],
    ks: &mut Vec<i64>,
    ms: &mut Vec<i64>,
    hist: &mut [u32],
) -> Option<Seen> {
    use std::arch::x86_64::*;
    let mut s = Search::new(v.len(), ks, ms);
    let magic = _mm256_set1_pd(MAGIC);
    let magic_bits = _mm256_set1_epi64x(MAGIC.to_bits() as i64);
    let limit = _mm256_set1_pd(TWO_51);
    let tol = _mm256_set1_pd(1.0 / 17592186044416.0);
    let magnitude = _mm256_castsi256_pd(_mm256_set1_epi64x(i64::MAX));
    let mut quads = v.chunks_exact(4);
    for (g, q) in (&mut quads).enumerate() {
        if g == 16 && s.too_many_raw() {
            hist.fill(0);
            return None;
        }
        // SAFETY: `q` holds four values (unaligned load).
        let x = unsafe { _mm256_loadu_pd(q.as_ptr()) };
        let (mut found, mut kv, mut mv) = (0i32, _mm256_setzero_si256(), _mm256_setzero_pd());
        let mut found_v = _mm256_setzero_pd();
        for (k, &pk) in POW10.iter().enumerate().take(VECTOR_E + 1) {
            let p = _mm256_mul_pd(x, _mm256_set1_pd(pk));
            let ap = _mm256_and_pd(p, magnitude);
            let m = _mm256_sub_pd(_mm256_add_pd(p, magic), magic);
            let near = _mm256_cmp_pd::<_CMP_LE_OQ>(
                _mm256_and_pd(_mm256_sub_pd(m, p), magnitude),
                _mm256_mul_pd(ap, tol),
            );
            let pass = _mm256_and_pd(near, _mm256_cmp_pd::<_CMP_LT_OQ>(ap, limit));
            // the lanes found at this exponent (not at a smaller one)
            let sel = _mm256_andnot_pd(found_v, pass);
            let new = _mm256_movemask_pd(sel);
            if new != 0 {
                kv = _mm256_castpd_si256(_mm256_blendv_pd(
                    _mm256_castsi256_pd(kv),
                    _mm256_castsi256_pd(_mm256_set1_epi64x(k as i64)),
                    sel,
                ));
                mv = _mm256_blendv_pd(mv, m, sel);
                found_v = _mm256_or_pd(found_v, sel);
                found |= new;
                if found == 0b1111 {
                    break;
                }
            }
        }
        // the exact check at each lane's exponent
        // SAFETY: the exponents are at most VECTOR_E, within the tables (gathers of 8-byte
        // elements at those indices).
        let (b, y) = unsafe {
            (
                _mm256_i64gather_pd::<8>(POW10_DECK.as_ptr(), kv),
                _mm256_i64gather_pd::<8>(INV10_DECK.as_ptr(), kv),
            )
        };
        let q2 = quotient4(mv, b, y);
        let same = _mm256_castsi256_pd(_mm256_cmpeq_epi64(
            _mm256_castpd_si256(q2),
            _mm256_castpd_si256(x),
        ));
        let exact = _mm256_movemask_pd(same) & found;
        // below 2^51, m + 1.5 2^52 is exact and its bits are those of 1.5 2^52 plus m
        let mi = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(mv, magic)), magic_bits);
        let (mut kk, mut mm) = ([0i64; 4], [0i64; 4]);
        // SAFETY: both arrays have room for the four words written (unaligned stores).
        unsafe {
            _mm256_storeu_si256(kk.as_mut_ptr().cast(), kv);
            _mm256_storeu_si256(mm.as_mut_ptr().cast(), mi);
        }
        for (j, &x) in q.iter().enumerate() {
            let found = if exact >> j & 1 == 1 {
                Some((kk[j] as usize, mm[j]))
            } else {
                min_exponent(x)
            };
            s.push(x, found, hist);
        }
    }
    let rest = quads.remainder();
    // (the check of the first 64 values, when the value after them is in the remainder)
    if v.len() - rest.len() == 64 && !rest.is_empty() && s.too_many_raw() {
        hist.fill(0);
        return None;
    }
    for &x in rest {
        s.push(x, min_exponent(x), hist);
    }
    Some(s.seen)
}

/// DECK's two integer columns for the exponents and mantissas of `deck_search`; `None` when
/// they would take `budget` bytes or more.
fn deck_columns(ks: &[i64], ms: &[i64], budget: usize) -> Option<Vec<u8>> {
    let n = ks.len();
    let mut kcol = Vec::with_capacity(n + 16);
    crate::intcodec::encode_ints(ks, &mut kcol);
    let mut out = Vec::with_capacity(n * 3 + 16);
    out.push(F_DECK);
    put_varint(&mut out, kcol.len() as u64);
    out.extend_from_slice(&kcol);
    // the mantissa column takes a byte at least
    if out.len() + 1 >= budget {
        return None;
    }
    let rest = budget.saturating_sub(out.len());
    encode_ints_within(ms, &mut out, rest).then_some(out)
}

/// Working buffers of RUNS, kept by the thread between columns (see `crate::scratch`); each
/// use clears those it fills.
#[derive(Default)]
struct RunScratch {
    /// `run_starts` masks of the column being encoded
    starts: Vec<u64>,
    /// per run: its value as a `total_key`, its length, its rank in the dictionary
    keys: Vec<i64>,
    lens: Vec<i64>,
    idx: Vec<i64>,
    /// the distinct keys in increasing order, and as values
    dict: Vec<i64>,
    dvals: Vec<f64>,
    /// a nested column before its length is known
    col: Vec<u8>,
    /// `dictionary`'s hash table (key, rank) and the slot of each key
    slots: Vec<(i64, u32)>,
    slot_of: Vec<u32>,
}

thread_local! {
    static RUN_SCRATCH: std::cell::Cell<RunScratch> = std::cell::Cell::new(RunScratch::default());
}

impl Scratch for RunScratch {
    fn reset(&mut self) {}

    fn oversized(&self) -> bool {
        self.starts.capacity() > 1 << 12 || self.keys.capacity() > 1 << 16
    }
}

/// Where runs of equal bit patterns start, as masks: bit `j` of `starts[w]` is set when a run
/// starts at `1 + 64 w + j` (the first run, at 0, is implied). Returns the number of runs.
/// Compiled for AVX2 when the processor has it: the baseline x86-64 has no 64-bit lane
/// comparison, and the compiler then compares one value at a time (about 4 instructions a
/// value instead of 1).
fn run_starts(v: &[f64], starts: &mut Vec<u64>) -> usize {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("popcnt") {
        // SAFETY: the processor has both features (checked just above).
        return unsafe { run_starts_avx2(v, starts) };
    }
    run_starts_portable(v, starts)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
fn run_starts_avx2(v: &[f64], starts: &mut Vec<u64>) -> usize {
    run_starts_portable(v, starts)
}

/// `run_starts` for any processor. Groups of 64 comparisons are independent and fixed in
/// length, which the compiler vectorises when it has the instructions; a loop that walks each
/// run to its end does not, and costs several times more.
#[inline(always)]
fn run_starts_portable(v: &[f64], starts: &mut Vec<u64>) -> usize {
    let n = v.len();
    starts.clear();
    if n < 2 {
        return n;
    }
    let (next, prev) = (&v[1..], &v[..n - 1]);
    let mut next64 = next.chunks_exact(64);
    let mut prev64 = prev.chunks_exact(64);
    starts.reserve(n.div_ceil(64));
    // (a plain loop, not `extend` with an iterator: that calls a function that is not compiled
    // for AVX2)
    for (a, b) in (&mut next64).zip(&mut prev64) {
        // (as arrays: a length known when compiling lets the group be unrolled and vectorised)
        let (a, b) = (
            <&[f64; 64]>::try_from(a).unwrap(),
            <&[f64; 64]>::try_from(b).unwrap(),
        );
        starts.push(differ_mask64(a, b));
    }
    if !next64.remainder().is_empty() {
        starts.push(differ_mask(next64.remainder(), prev64.remainder()));
    }
    1 + starts
        .iter()
        .map(|m| m.count_ones() as usize)
        .sum::<usize>()
}

/// `differ_mask` of 64 pairs (the array type makes the length a constant for the compiler).
#[inline(always)]
fn differ_mask64(next: &[f64; 64], prev: &[f64; 64]) -> u64 {
    differ_mask(next, prev)
}

/// Bit `j` set when `next[j]` and `prev[j]` differ (as bit patterns), for up to 64 pairs.
#[inline(always)]
fn differ_mask(next: &[f64], prev: &[f64]) -> u64 {
    next.iter()
        .zip(prev)
        .enumerate()
        .fold(0u64, |m, (j, (a, b))| {
            m | (((a.to_bits() != b.to_bits()) as u64) << j)
        })
}

/// RUNS, or `None` when it would take `budget` bytes or more. `s.starts` holds the
/// `run_starts` of `v` (`runs` runs).
fn encode_runs(v: &[f64], s: &mut RunScratch, runs: usize, budget: usize) -> Option<Vec<u8>> {
    // the value of each run as its `total_cmp` key, and its length
    let RunScratch {
        starts,
        keys,
        lens,
        idx,
        dict,
        dvals,
        col,
        slots,
        slot_of,
    } = s;
    keys.clear();
    lens.clear();
    let mut start = 0usize;
    for (w, &m) in starts.iter().enumerate() {
        let mut m = m;
        while m != 0 {
            let i = 1 + 64 * w + m.trailing_zeros() as usize;
            keys.push(total_key(v[start].to_bits()));
            lens.push((i - start) as i64);
            start = i;
            m &= m - 1;
        }
    }
    keys.push(total_key(v[start].to_bits()));
    lens.push((v.len() - start) as i64);
    debug_assert_eq!(keys.len(), runs);
    dictionary_into(keys, dict, idx, slots, slot_of);
    dvals.clear();
    dvals.extend(
        dict.iter()
            .map(|&k| f64::from_bits(total_key(k as u64) as u64)),
    );
    let mut out = Vec::with_capacity(runs * 2 + 16);
    out.push(F_RUNS);
    put_varint(&mut out, runs as u64);
    put_varint(&mut out, dict.len() as u64);
    col.clear();
    encode_floats_depth(dvals, col, false);
    put_varint(&mut out, col.len() as u64);
    out.extend_from_slice(col);
    col.clear();
    // each column after this one takes a byte at least, the last one without a length
    let rest = |out: &Vec<u8>, after: usize| budget.saturating_sub(out.len() + after);
    let idx_budget = rest(&out, 2);
    if !encode_ints_within(idx, col, idx_budget) {
        return None;
    }
    put_varint(&mut out, col.len() as u64);
    out.extend_from_slice(col);
    let last = rest(&out, 0);
    if !encode_ints_within(lens, &mut out, last) {
        return None;
    }
    (out.len() < budget).then_some(out)
}

/// The distinct keys in increasing order (for values: `total_cmp` order; distinct bit
/// patterns have distinct keys) and the rank of each key among them.
#[cfg(test)]
fn dictionary(keys: &[i64]) -> (Vec<i64>, Vec<i64>) {
    let (mut dict, mut idx) = (Vec::new(), Vec::new());
    dictionary_into(keys, &mut dict, &mut idx, &mut Vec::new(), &mut Vec::new());
    (dict, idx)
}

/// `dictionary` into `dict` and `idx`, with `slots` and `slot_of` as working buffers. Few keys
/// are sorted and searched; many are put in a hash table (open addressing, at most half full),
/// so that only the distinct ones are sorted, and their ranks are read back from the table.
fn dictionary_into(
    keys: &[i64],
    dict: &mut Vec<i64>,
    idx: &mut Vec<i64>,
    slots: &mut Vec<(i64, u32)>,
    slot_of: &mut Vec<u32>,
) {
    const EMPTY: u32 = u32::MAX;
    dict.clear();
    idx.clear();
    if keys.len() < 48 {
        dict.extend_from_slice(keys);
        dict.sort_unstable();
        dict.dedup();
        idx.extend(
            keys.iter()
                .map(|k| dict.binary_search(k).unwrap_or(0) as i64),
        );
        return;
    }
    let cap = (2 * keys.len()).next_power_of_two().max(16);
    let shift = 64 - cap.trailing_zeros();
    let home = |k: i64| ((k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> shift) as usize;
    // (key, rank) in one slot: a probe reads one cache line, not two
    slots.clear();
    slots.resize(cap, (0, EMPTY));
    slot_of.clear();
    for &k in keys {
        let mut h = home(k);
        loop {
            let (sk, rank) = slots[h];
            if rank == EMPTY {
                slots[h] = (k, 0);
                dict.push(k);
                break;
            }
            if sk == k {
                break;
            }
            h = (h + 1) & (cap - 1);
        }
        slot_of.push(h as u32);
    }
    dict.sort_unstable();
    for (rank, &k) in dict.iter().enumerate() {
        let mut h = home(k);
        while slots[h].1 == EMPTY || slots[h].0 != k {
            h = (h + 1) & (cap - 1);
        }
        slots[h].1 = rank as u32;
    }
    idx.extend(slot_of.iter().map(|&h| slots[h as usize].1 as i64));
}

/// `f64::total_cmp` orders values as this signed key of their bit patterns orders them (the
/// same transformation); it is its own inverse (as a bit pattern).
#[inline]
fn total_key(bits: u64) -> i64 {
    let x = bits as i64;
    x ^ (((x >> 63) as u64) >> 1) as i64
}

/// Powers of ten by DECK exponent, 1 from `K_RAW` on (a placeholder: those values are raw
/// bit patterns, or the exponent is out of range), so that any `k & 31` indexes it.
const POW10_DECK: [f64; 32] = {
    let mut t = [1.0; 32];
    let mut i = 0;
    while i <= MAX_E {
        t[i] = POW10[i];
        i += 1;
    }
    t
};

/// `1 / POW10_DECK[k]` rounded to nearest (constant evaluation is IEEE arithmetic).
#[cfg(any(target_arch = "x86_64", test))]
const INV10_DECK: [f64; 32] = {
    let mut t = [1.0; 32];
    let mut i = 0;
    while i < 32 {
        t[i] = 1.0 / POW10_DECK[i];
        i += 1;
    }
    t
};

/// The values of a DECK column from its exponents and mantissas (as many of each), with a
/// check of the exponents. One pass without branches, which the compiler vectorises: the
/// quotient is computed for raw values too (and dropped).
fn deck_values(ks: &[i64], ms: &[i64]) -> Result<Vec<f64>> {
    let n = ks.len().min(ms.len());
    let (ks, ms) = (&ks[..n], &ms[..n]);
    let mut out: Vec<f64> = Vec::with_capacity(n);
    let dst = &mut out.spare_capacity_mut()[..n];
    let any = deck_fill(ks, ms, dst);
    if any >> 5 != 0 {
        let k = ks
            .iter()
            .find(|&&k| !(0..=K_RAW).contains(&k))
            .unwrap_or(&-1);
        return Err(Error::corrupt(format!("decimal exponent {k} out of range")));
    }
    // SAFETY: `deck_fill` wrote every one of the first `n` spare elements (`dst` is exactly
    // them), and the capacity is at least `n`.
    unsafe { out.set_len(n) };
    Ok(out)
}

/// Columns from this many values on take the AVX-512 pass: the processor runs 512-bit
/// instructions at full speed only some microseconds after the first ones, which short
/// columns, decoded one call at a time, would pay every time (their decode was ~20 % slower).
#[cfg(target_arch = "x86_64")]
const AVX512_MIN: usize = 8192;

/// Writes the value of every `(k, m)` pair into `dst`, and returns an OR of the exponents
/// and the exponents + 12 (as u64): 0 <= k <= 19 for all exactly when it has no bit from 2^5
/// up (a check in the same pass, without a branch). With fused multiply-adds where the
/// processor has them: a division by 10^k costs about 2 cycles per value whatever the vector
/// width, the corrected products below a few instructions per vector, and they give the same
/// bits (see `deck_quotient_fma`).
fn deck_fill(ks: &[i64], ms: &[i64], dst: &mut [MaybeUninit<f64>]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::kernels::{allowed, Tier};
        if allowed(Tier::Avx512)
            && ks.len() >= AVX512_MIN
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512dq")
        {
            // SAFETY: the processor has these features (checked just above).
            return unsafe { deck_fill_avx512(ks, ms, dst) };
        }
        if allowed(Tier::Avx2)
            && std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
        {
            // SAFETY: the processor has these features (checked just above).
            return unsafe { deck_fill_fma(ks, ms, dst) };
        }
    }
    deck_fill_with(ks, ms, dst, deck_quotient_div)
}

/// `deck_fill` in 4-lane vectors (AVX2 and FMA), one pass without branches. Mantissas of
/// magnitude up to 2^51 (nearly all) become doubles exactly by the magic-number trick (AVX2
/// has no conversion of `i64`); if any other than a raw value's is larger, the pass is done
/// again by the divisions.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn deck_fill_fma(ks: &[i64], ms: &[i64], dst: &mut [MaybeUninit<f64>]) -> u64 {
    use std::arch::x86_64::*;
    let n = dst.len().min(ks.len()).min(ms.len());
    let (ks, ms, dst) = (&ks[..n], &ms[..n], &mut dst[..n]);
    // adding m in [-2^51, 2^51) to the bits of MAGIC gives the double MAGIC + m
    let magic_i = _mm256_set1_epi64x(MAGIC.to_bits() as i64);
    let magic_f = _mm256_set1_pd(MAGIC);
    let half_range = _mm256_set1_epi64x(1 << 51);
    let twelve = _mm256_set1_epi64x(12);
    let raw = _mm256_set1_epi64x(K_RAW);
    let low5 = _mm256_set1_epi64x(31);
    // OR of the exponents and exponents + 12; of (m + 2^51) >> 52 of the non-raw values
    let mut any = _mm256_setzero_si256();
    let mut big = _mm256_setzero_si256();
    let mut d4 = dst.chunks_exact_mut(4);
    for ((o, k4), m4) in (&mut d4).zip(ks.chunks_exact(4)).zip(ms.chunks_exact(4)) {
        let k = _mm256_set_epi64x(k4[3], k4[2], k4[1], k4[0]);
        let m = _mm256_set_epi64x(m4[3], m4[2], m4[1], m4[0]);
        any = _mm256_or_si256(any, _mm256_or_si256(k, _mm256_add_epi64(k, twelve)));
        let is_raw = _mm256_cmpeq_epi64(k, raw);
        let out_of_range = _mm256_srli_epi64::<52>(_mm256_add_epi64(m, half_range));
        big = _mm256_or_si256(big, _mm256_andnot_si256(is_raw, out_of_range));
        let a = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_add_epi64(m, magic_i)), magic_f);
        let i = _mm256_and_si256(k, low5);
        // SAFETY: every index is below 32 (masked just above), both tables have 32 entries.
        let (b, y) = unsafe {
            (
                _mm256_i64gather_pd::<8>(POW10_DECK.as_ptr(), i),
                _mm256_i64gather_pd::<8>(INV10_DECK.as_ptr(), i),
            )
        };
        let q2 = quotient4(a, b, y);
        let v = _mm256_blendv_pd(q2, _mm256_castsi256_pd(m), _mm256_castsi256_pd(is_raw));
        let mut w = [0f64; 4];
        // SAFETY: `w` has room for the four values written (unaligned store).
        unsafe { _mm256_storeu_pd(w.as_mut_ptr(), v) };
        for (o, w) in o.iter_mut().zip(w) {
            o.write(w);
        }
    }
    let done = n - n % 4;
    let rest = deck_fill_with(
        &ks[done..],
        &ms[done..],
        d4.into_remainder(),
        deck_quotient_div,
    );
    if _mm256_testz_si256(big, big) == 0 {
        return deck_fill_with(ks, ms, dst, deck_quotient_div);
    }
    let mut lanes = [0i64; 4];
    // SAFETY: `lanes` has room for the four words written (unaligned store).
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), any) };
    lanes.iter().fold(rest, |a, &l| a | l as u64)
}

/// `deck_fill` in 8-lane vectors (AVX-512 F and DQ), one pass without branches. Unlike
/// `deck_fill_fma`: the powers of ten and their reciprocals are picked from registers by
/// permutes (the two gathers per vector of AVX2 cost more than the rest of the pass), and
/// every mantissa becomes a double by the rounding conversion (`m as f64`), so none is
/// handed over to the divisions.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
fn deck_fill_avx512(ks: &[i64], ms: &[i64], dst: &mut [MaybeUninit<f64>]) -> u64 {
    use std::arch::x86_64::*;
    let n = dst.len().min(ks.len()).min(ms.len());
    let (ks, ms, dst) = (&ks[..n], &ms[..n], &mut dst[..n]);
    // SAFETY: each table has 32 entries: four vectors of 8 read from them.
    let (pow, inv) = unsafe {
        (
            [0, 8, 16, 24].map(|i| _mm512_loadu_pd(POW10_DECK[i..i + 8].as_ptr())),
            [0, 8, 16, 24].map(|i| _mm512_loadu_pd(INV10_DECK[i..i + 8].as_ptr())),
        )
    };
    let twelve = _mm512_set1_epi64(12);
    let raw = _mm512_set1_epi64(K_RAW);
    let sixteen = _mm512_set1_epi64(16);
    // OR of the exponents and exponents + 12
    let mut any = _mm512_setzero_si512();
    let mut d8 = dst.chunks_exact_mut(8);
    for ((o, k8), m8) in (&mut d8).zip(ks.chunks_exact(8)).zip(ms.chunks_exact(8)) {
        // SAFETY: both chunks have 8 elements (unaligned loads).
        let (k, m) = unsafe {
            (
                _mm512_loadu_si512(k8.as_ptr().cast()),
                _mm512_loadu_si512(m8.as_ptr().cast()),
            )
        };
        any = _mm512_or_si512(any, _mm512_or_si512(k, _mm512_add_epi64(k, twelve)));
        let is_raw = _mm512_cmpeq_epi64_mask(k, raw);
        let a = _mm512_cvtepi64_pd(m);
        // table entry k & 31: the low 4 bits pick among 16 entries, bit 4 the half
        let high = _mm512_test_epi64_mask(k, sixteen);
        let b = _mm512_mask_blend_pd(
            high,
            _mm512_permutex2var_pd(pow[0], k, pow[1]),
            _mm512_permutex2var_pd(pow[2], k, pow[3]),
        );
        let y = _mm512_mask_blend_pd(
            high,
            _mm512_permutex2var_pd(inv[0], k, inv[1]),
            _mm512_permutex2var_pd(inv[2], k, inv[3]),
        );
        // deck_quotient_fma, eight at a time
        let q0 = _mm512_mul_pd(a, y);
        let q1 = _mm512_fmadd_pd(_mm512_fnmadd_pd(q0, b, a), y, q0);
        let q2 = _mm512_fmadd_pd(_mm512_fnmadd_pd(q1, b, a), y, q1);
        let v = _mm512_mask_blend_pd(is_raw, q2, _mm512_castsi512_pd(m));
        let mut w = [0f64; 8];
        // SAFETY: `w` has room for the eight values written (unaligned store).
        unsafe { _mm512_storeu_pd(w.as_mut_ptr(), v) };
        for (o, w) in o.iter_mut().zip(w) {
            o.write(w);
        }
    }
    let done = n - n % 8;
    let rest = deck_fill_with(
        &ks[done..],
        &ms[done..],
        d8.into_remainder(),
        deck_quotient_div,
    );
    rest | _mm512_reduce_or_epi64(any) as u64
}

/// `f64(m) / 10^k` (0 <= k <= 18; any result for `K_RAW`) by a division.
#[inline(always)]
fn deck_quotient_div(k: usize, a: f64) -> f64 {
    a / POW10_DECK[k]
}

/// `deck_quotient_fma` four lanes at a time: `m / b` for `y = RN(1 / b)`, bit for bit the
/// division (DEC's and DECK's exact checks, DECK's and DECJ's values).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn quotient4(
    m: std::arch::x86_64::__m256d,
    b: std::arch::x86_64::__m256d,
    y: std::arch::x86_64::__m256d,
) -> std::arch::x86_64::__m256d {
    use std::arch::x86_64::*;
    let q0 = _mm256_mul_pd(m, y);
    let q1 = _mm256_fmadd_pd(_mm256_fnmadd_pd(q0, b, m), y, q0);
    _mm256_fmadd_pd(_mm256_fnmadd_pd(q1, b, m), y, q1)
}

/// `f64(m) / 10^k`, correctly rounded like the division, without one (Markstein's method).
/// With `b = 10^k` (exact for k <= 22) and `y = RN(1/b)`: `q0 = RN(a * y)` is within 1.5
/// ulp of a/b; one correction `q1 = RN(q0 + RN(a - b*q0) * y)` brings it within one ulp
/// (faithful), and then, the remainder `a - b*q1` being exact, `q2 = RN(q1 + (a - b*q1) * y)`
/// is the correctly rounded quotient (Markstein's theorem: y within half an ulp of 1/b, q1
/// faithful; nothing here overflows or underflows, |a| <= 2^63 and 1 <= b <= 10^18).
/// `deck_fma_matches_division` checks it against the division, near halfway cases too, and
/// the vector pass of `deck_fill_fma` against it.
#[cfg(test)]
fn deck_quotient_fma(k: usize, a: f64) -> f64 {
    let (b, y) = (POW10_DECK[k], INV10_DECK[k]);
    let q0 = a * y;
    let q1 = (-q0).mul_add(b, a).mul_add(y, q0);
    (-q1).mul_add(b, a).mul_add(y, q1)
}

/// The pass of `deck_fill`, with `quotient` for `f64(m) / 10^k`.
#[inline(always)]
fn deck_fill_with(
    ks: &[i64],
    ms: &[i64],
    dst: &mut [MaybeUninit<f64>],
    quotient: impl Fn(usize, f64) -> f64,
) -> u64 {
    let mut any = 0u64;
    for ((o, &k), &m) in dst.iter_mut().zip(ks).zip(ms) {
        any |= k as u64 | (k as u64).wrapping_add(12);
        let q = quotient((k & 31) as usize, m as f64);
        o.write(if k == K_RAW {
            f64::from_bits(m as u64)
        } else {
            q
        });
    }
    any
}

pub fn decode_floats(data: &[u8], n: usize) -> Result<Vec<f64>> {
    decode_floats_depth(data, n, true)
}

fn decode_floats_depth(data: &[u8], n: usize, allow_runs: bool) -> Result<Vec<f64>> {
    let mut r = Reader::new(data);
    let tag = r.u8("float column tag")?;
    let out = match tag {
        F_RAW => {
            let raw = r.take(n * 8, "raw float column")?;
            raw.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect()
        }
        F_CONST => vec![f64::from_bits(r.u64("constant")?); n],
        F_DEC => {
            let e = r.u8("decimal exponent")? as usize;
            if e > MAX_E {
                return Err(Error::corrupt(format!("decimal exponent {e} over {MAX_E}")));
            }
            let x = r.varint("exception count")?;
            if x > n as u64 || x > (r.remaining() / 9) as u64 {
                return Err(Error::corrupt("exception count out of range"));
            }
            let mut exc = Vec::with_capacity(x as usize);
            let mut pos = 0usize;
            for j in 0..x {
                let gap = r.varint("exception gap")?;
                if (j > 0 && gap == 0) || gap >= n as u64 {
                    return Err(Error::corrupt("exception position out of range"));
                }
                pos += gap as usize;
                if pos >= n {
                    return Err(Error::corrupt("exception position out of range"));
                }
                exc.push((pos, r.u64("exception value")?));
            }
            let p = POW10[e];
            let mut out = decode_ints_map(r.rest(), n, |m| (m as f64) / p)?;
            r = Reader::new(&[]);
            for (i, bits) in exc {
                out[i] = f64::from_bits(bits);
            }
            out
        }
        F_DECK => {
            let l = r.len_prefix("exponent column length")?;
            let kcol = r.take(l, "exponent column")?;
            let mcol = r.rest();
            r = Reader::new(&[]);
            // exponents and mantissas are only read here: decoded into buffers kept by the
            // thread (no allocation, no clearing)
            let (mut ks, mut ms) = (Reused::take(&EXPONENTS), Reused::take(&MANTISSAS));
            decode_ints_into(kcol, n, &mut ks)?;
            decode_ints_into(mcol, n, &mut ms)?;
            deck_values(&ks, &ms)?
        }
        F_DECJ => {
            let (mut ks, mut ms) = (Reused::take(&EXPONENTS), Reused::take(&MANTISSAS));
            decode_decj(&mut r, n, &mut ks, &mut ms)?;
            deck_values(&ks, &ms)?
        }
        F_RUNS if allow_runs => {
            let runs = r.varint("run count")?;
            let u = r.varint("dictionary size")?;
            if runs == 0 || runs > n as u64 || u == 0 || u > runs {
                return Err(Error::corrupt("run or dictionary count out of range"));
            }
            let l = r.len_prefix("dictionary length")?;
            let dict = decode_floats_depth(r.take(l, "dictionary")?, u as usize, false)?;
            let l = r.len_prefix("run index length")?;
            let idx = decode_ints(r.take(l, "run indices")?, runs as usize)?;
            let lens = decode_ints(r.rest(), runs as usize)?;
            r = Reader::new(&[]);
            let mut out = Vec::with_capacity(n);
            for (&k, &len) in idx.iter().zip(&lens) {
                if k < 0 || k as u64 >= u {
                    return Err(Error::corrupt("run index out of range"));
                }
                if len < 1 || len as u64 > (n - out.len()) as u64 {
                    return Err(Error::corrupt("run length out of range"));
                }
                out.resize(out.len() + len as usize, dict[k as usize]);
            }
            if out.len() != n {
                return Err(Error::corrupt("runs do not add up to the value count"));
            }
            out
        }
        t => {
            return Err(Error::corrupt(format!(
                "unknown float column strategy 0x{t:02x}"
            )))
        }
    };
    if !r.is_empty() {
        return Err(Error::corrupt(format!(
            "float column has {} trailing bytes",
            r.remaining()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `mantissa` without its early exit: the early exit must never change the answer.
    fn mantissa_reference(v: f64, e: usize) -> Option<i64> {
        let m = round_fast(v * POW10[e]);
        if m.is_nan() || m.abs() >= 9.2e18 {
            return None;
        }
        let m = m as i64;
        ((m as f64) / POW10[e])
            .to_bits()
            .eq(&v.to_bits())
            .then_some(m)
    }

    #[test]
    fn dictionary_ranks_match_sorting() {
        let mut rnd = crate::testutil::xorshift(0x9e3779b97f4a7c15);
        for round in 0..300 {
            let x = rnd();
            let n = [(x % 3000) as usize, (x % 60) as usize][round % 2];
            let spread = 1 + (x >> 20) % 500;
            let keys: Vec<i64> = (0..n)
                .map(|_| {
                    let x = rnd();
                    if spread > 400 {
                        x as i64
                    } else {
                        (x % spread) as i64 * 0x10_0000_0000 - 7
                    }
                })
                .collect();
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            sorted.dedup();
            let (dict, idx) = dictionary(&keys);
            assert_eq!(dict, sorted, "round {round}");
            for (k, i) in keys.iter().zip(&idx) {
                assert_eq!(sorted.binary_search(k).unwrap() as i64, *i, "round {round}");
            }
        }
    }

    /// `run_starts` (as dispatched, and the portable code) against a plain walk, on every
    /// length up to three groups of 64 and values that compare equal as floats but not as bit
    /// patterns (and the reverse).
    #[test]
    fn run_starts_match_plain_walk() {
        let mut rnd = crate::testutil::xorshift(0x243f6a8885a308d3);
        let pool = [
            0.0,
            -0.0,
            f64::NAN,
            f64::from_bits(0x7ff8_0000_0000_0001),
            1.5,
            1.5 + 1e-15,
        ];
        for n in 0..200 {
            for round in 0..20 {
                let change = 1 + round % 7;
                let mut x = pool[0];
                let v: Vec<f64> = (0..n)
                    .map(|_| {
                        let r = rnd();
                        if r.is_multiple_of(change as u64) {
                            x = pool[(r >> 8) as usize % pool.len()];
                        }
                        x
                    })
                    .collect();
                let want: Vec<usize> = (1..n)
                    .filter(|&i| v[i].to_bits() != v[i - 1].to_bits())
                    .collect();
                for (portable, what) in [(false, "dispatched"), (true, "portable")] {
                    let mut starts = vec![7u64; 3];
                    let runs = if portable {
                        run_starts_portable(&v, &mut starts)
                    } else {
                        run_starts(&v, &mut starts)
                    };
                    let got: Vec<usize> = (0..starts.len() * 64)
                        .filter(|&b| starts[b / 64] >> (b % 64) & 1 == 1)
                        .map(|b| b + 1)
                        .collect();
                    assert_eq!(got, want, "{what}, n {n}");
                    assert_eq!(
                        runs,
                        if n == 0 { 0 } else { 1 + want.len() },
                        "{what}, n {n}"
                    );
                }
            }
        }
    }

    #[test]
    fn dec_mantissas_vector_pass_matches_scalar() {
        // decimals of every exponent, with exceptions of every kind in every lane position
        let mut next = crate::testutil::xorshift(23);
        let specials = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.0,
            1e300,
            -2251799813685248.0,
            0.1 + 0.2,
            f64::from_bits(1),
        ];
        for round in 0..3000 {
            let e = round % (MAX_E + 1);
            let n = (next() % 300) as usize;
            let scale = 10f64.powi((next() % 12) as i32);
            let v: Vec<f64> = (0..n)
                .map(|_| match next() % 16 {
                    0 => specials[(next() % specials.len() as u64) as usize],
                    // products around 2^51, on both sides of the fast path's limit
                    1 => (2251799813685248.0 + (next() % 64) as f64 - 32.0) / POW10[e],
                    _ => {
                        let m = (next() % 2_000_000) as f64 - 1_000_000.0;
                        (m * scale).round() / POW10[(next() % (e as u64 + 1)) as usize]
                    }
                })
                .collect();
            let run = || {
                let (mut ms, mut exc) = (Vec::new(), Vec::new());
                let ok = dec_mantissas(&v, e, usize::MAX, &mut ms, &mut exc);
                (ok, ms, exc)
            };
            let portable = crate::kernels::capped(crate::kernels::Tier::Portable, run);
            assert_eq!(run(), portable, "round {round}, e = {e}");
        }
    }

    #[test]
    fn round_fast_rounds_as_round_above_2_51() {
        // where the rounding trick does not apply, the answer is `f64::round`'s bit for bit
        let mut next = crate::testutil::xorshift(11);
        let mut cases = vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 9.2e18, -1e300];
        for scale in [
            2251799813685248.0f64,
            4503599627370496.0,
            9007199254740992.0,
        ] {
            for d in [-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5] {
                cases.push(scale + d);
                cases.push(-(scale + d));
            }
        }
        for _ in 0..10_000 {
            let halves = (next() >> 11) as f64 * 0.5 + 2251799813685248.0;
            cases.push(if next() & 1 == 0 { halves } else { -halves });
        }
        for x in cases
            .into_iter()
            .filter(|x| x.is_nan() || x.abs() >= 2251799813685248.0)
        {
            assert_eq!(round_fast(x).to_bits(), x.round().to_bits(), "{x}");
        }
    }

    #[test]
    fn total_key_orders_as_total_cmp() {
        let mut rnd = crate::testutil::xorshift(0x9e3779b97f4a7c15);
        let mut vals: Vec<u64> = [0.0f64, -0.0, 1.5, -1.5, f64::INFINITY, f64::NEG_INFINITY]
            .iter()
            .map(|v| v.to_bits())
            .chain([
                f64::NAN.to_bits(),
                0x7ff0_0000_0000_0001,
                0xfff8_0000_0000_0000,
                1,
                1 << 63,
            ])
            .collect();
        vals.extend((0..2000).map(|_| rnd()));
        for &a in &vals {
            assert_eq!(total_key(total_key(a) as u64) as u64, a);
            for &b in vals.iter().take(200) {
                let (fa, fb) = (f64::from_bits(a), f64::from_bits(b));
                assert_eq!(total_key(a).cmp(&total_key(b)), fa.total_cmp(&fb));
            }
        }
    }

    #[test]
    fn mantissa_early_exit_changes_nothing() {
        let mut rnd = crate::testutil::xorshift(0x9e3779b97f4a7c15u64);
        let mut values = vec![
            0.0,
            -0.0,
            5e-324,
            -5e-324,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::INFINITY,
            f64::NAN,
            12.899999999999999,
            0.30000000000000004,
        ];
        for _ in 0..200_000 {
            let r = rnd();
            let v = match r % 4 {
                // short decimals, and their neighbours one ulp away
                0 | 1 => {
                    let k = (rnd() % 19) as usize;
                    let m = (rnd() % 10u64.pow((rnd() % 18) as u32 + 1)) as f64;
                    let d = if r & 16 == 0 { m } else { -m } / POW10[k];
                    match r % 3 {
                        0 => d,
                        1 => f64::from_bits(d.to_bits().wrapping_add(1)),
                        _ => f64::from_bits(d.to_bits().wrapping_sub(1)),
                    }
                }
                2 => f64::from_bits(rnd()),
                _ => (rnd() % 100_000) as f64 / 7.0,
            };
            values.push(v);
        }
        for &v in &values {
            for e in 0..=MAX_E {
                assert_eq!(mantissa(v, e), mantissa_reference(v, e), "{v:e} at {e}");
                assert_eq!(mantissa_with::<false>(v, e), mantissa_reference(v, e));
            }
        }
    }

    /// `deck_values` against the per-value rule, and its exponent check against a plain one
    /// (every length, so that the groups of four and the remainder are both covered).
    #[test]
    fn deck_values_match_reference() {
        let mut rnd = crate::testutil::xorshift(0x452821e638d01377u64);
        for round in 0..3000 {
            let n = (rnd() % 40) as usize;
            let bad_at = if round % 3 == 0 {
                Some((rnd() % 64) as usize)
            } else {
                None
            };
            let ks: Vec<i64> = (0..n)
                .map(|i| {
                    if Some(i) == bad_at {
                        [-1i64, 20, 31, 32, 44, i64::MIN, i64::MAX, -12, -13][(rnd() % 9) as usize]
                    } else {
                        (rnd() % 20) as i64
                    }
                })
                .collect();
            let ms: Vec<i64> = (0..n).map(|_| (rnd() >> (rnd() % 64)) as i64).collect();
            let got = deck_values(&ks, &ms);
            if ks.iter().any(|k| !(0..=K_RAW).contains(k)) {
                assert!(got.is_err(), "round {round}: {ks:?}");
                continue;
            }
            let got = got.unwrap();
            for i in 0..n {
                let want = if ks[i] == K_RAW {
                    f64::from_bits(ms[i] as u64)
                } else {
                    (ms[i] as f64) / POW10[ks[i] as usize]
                };
                assert_eq!(got[i].to_bits(), want.to_bits(), "round {round} at {i}");
            }
        }
    }

    /// The division-free quotient (`deck_quotient_fma`, and `deck_fill` where the processor
    /// runs its vector version) gives the division's bits: mantissas of every size, small
    /// ones exhaustively, and mantissas whose quotient lies close to halfway between two
    /// doubles (where a wrong rounding would show).
    #[test]
    fn deck_fma_matches_division() {
        let mut rnd = crate::testutil::xorshift(0x9e3779b97f4a7c15u64);
        let mut ks: Vec<i64> = Vec::new();
        let mut ms: Vec<i64> = Vec::new();
        for k in 0..=MAX_E as i64 {
            for m in -(1i64 << 12)..(1 << 12) {
                ks.push(k);
                ms.push(m);
            }
            for _ in 0..20_000 {
                ks.push(k);
                ms.push((rnd() >> (rnd() % 64)) as i64);
            }
            // near halfway: m = round(h * 10^k) for h halfway between two doubles
            // (h = (2 sig + 1) / 2^s for a 53-bit `sig`), and its neighbours
            let five = 5u128.pow(k as u32);
            for _ in 0..20_000 {
                let sig = (rnd() >> 11) | 1 << 52;
                let bits = 20 + (rnd() % 42) as u32; // of m
                let num = (2 * sig as u128 + 1) * five;
                let s = (128 - num.leading_zeros()).saturating_sub(bits).max(1);
                let m = ((num + (1 << (s - 1))) >> s) as i64;
                for d in -2..=2 {
                    for sign in [1, -1] {
                        ks.push(k);
                        ms.push(sign * m.wrapping_add(d));
                    }
                }
            }
        }
        ks.extend([0, 5, 18, 18, 18, K_RAW, K_RAW]);
        ms.extend([i64::MIN, i64::MAX, i64::MIN, i64::MAX, -1, -7, 1 << 62]);
        for (i, (&k, &m)) in ks.iter().zip(&ms).enumerate() {
            if k != K_RAW {
                let want = (m as f64) / POW10[k as usize];
                let got = deck_quotient_fma(k as usize, m as f64);
                assert_eq!(got.to_bits(), want.to_bits(), "at {i}: {m} / 10^{k}");
            }
        }
        // the vector pass takes mantissas below 2^51 (and raw values): on those alone, at
        // every start modulo 4 (groups of four and the remainder); on all, in pieces, most
        // of which it hands over to the divisions
        let small: (Vec<i64>, Vec<i64>) = ks
            .iter()
            .zip(&ms)
            .filter(|&(&k, &m)| k == K_RAW || m.unsigned_abs() < 1 << 51)
            .unzip();
        assert!(small.0.len() > ks.len() / 2);
        let check = |ks: &[i64], ms: &[i64]| {
            let got = deck_values(ks, ms).unwrap();
            for (i, ((&k, &m), g)) in ks.iter().zip(ms).zip(got).enumerate() {
                let want = if k == K_RAW {
                    f64::from_bits(m as u64)
                } else {
                    (m as f64) / POW10[k as usize]
                };
                assert_eq!(g.to_bits(), want.to_bits(), "at {i}: {m} / 10^{k}");
            }
        };
        for skip in 0..8 {
            check(&small.0[skip..], &small.1[skip..]);
        }
        for (k, m) in ks.chunks(61).zip(ms.chunks(61)) {
            check(k, m);
        }
    }

    /// `deck_values_match_reference` on the division pass (where the processor would run the
    /// vector one).
    #[test]
    fn deck_values_match_reference_portable() {
        crate::kernels::capped(crate::kernels::Tier::Portable, deck_values_match_reference);
    }

    /// `deck_values_match_reference` and `deck_fma_matches_division` on the AVX2 pass (where
    /// the processor would run the AVX-512 one).
    #[test]
    fn deck_values_match_reference_avx2() {
        crate::kernels::capped(crate::kernels::Tier::Avx2, || {
            deck_values_match_reference();
            deck_fma_matches_division();
        });
    }

    fn rt(v: &[f64]) -> usize {
        let mut b = Vec::new();
        encode_floats(v, &mut b);
        let d = decode_floats(&b, v.len()).unwrap();
        assert_eq!(d.len(), v.len());
        for (a, x) in d.iter().zip(v) {
            assert_eq!(a.to_bits(), x.to_bits(), "tag {:02x}", b[0]);
        }
        for cut in 0..b.len() {
            let _ = decode_floats(&b[..cut], v.len());
        }
        b.len()
    }

    #[test]
    fn roundtrips() {
        rt(&[]);
        rt(&[1.5]);
        rt(&[
            f64::NAN,
            -0.0,
            0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            5e-324,
        ]);
        let dec: Vec<f64> = (0..1000)
            .map(|i| ((i * 37 % 1000) as f64) / 10.0 - 20.0)
            .collect();
        assert!(rt(&dec) < 1000 * 3);
        let mixed: Vec<f64> = (0..500)
            .map(|i| {
                if i % 3 == 0 {
                    0.0
                } else {
                    1234.5678 / (i as f64)
                }
            })
            .collect();
        rt(&mixed);
        let runs: Vec<f64> = (0..2000)
            .map(|i| [31.700000000000003, 12.5, -1.0][(i / 37) % 3])
            .collect();
        assert!(rt(&runs) < 300);
        let weird: Vec<f64> = (0..300)
            .map(|i| f64::from_bits(0x7ff0_0000_0000_0001 + i))
            .collect();
        rt(&weird);
        let with_nan: Vec<f64> = (0..300)
            .map(|i| if i == 7 { f64::NAN } else { i as f64 * 0.25 })
            .collect();
        rt(&with_nan);
    }

    /// Decimals of 1 to 8 places with about seven digits each (as float32 readings print),
    /// two in five zero, and a few values that are no short decimal.
    fn float32_like(n: usize, seed: u64) -> Vec<f64> {
        let mut next = crate::testutil::xorshift(seed);
        (0..n)
            .map(|_| {
                let r = next();
                match r % 40 {
                    0..=15 => 0.0,
                    16 => f64::from_bits(next() >> 2),
                    _ => {
                        let k = 1 + (r >> 8) % 8;
                        let m = ((r >> 16) % 9_000_000 + 1_000_000) as f64;
                        let v = m / POW10[k as usize];
                        if r >> 60 & 1 == 1 {
                            -v
                        } else {
                            v
                        }
                    }
                }
            })
            .collect()
    }

    /// Float32-like decimals are coded by DECJ at every length, round trip bit for bit, and
    /// take fewer bytes than DECK's two integer columns would (the exponent and the length
    /// of the mantissa coded together); every cut of the column is an error, not a panic.
    #[test]
    fn decj_codes_float32_decimals() {
        for (n, seed) in [(64, 1), (256, 2), (1000, 3), (5000, 4)] {
            let v = float32_like(n, seed);
            let mut b = Vec::new();
            encode_floats(&v, &mut b);
            assert_eq!(b[0], F_DECJ, "n = {n}");
            let d = decode_floats(&b, n).unwrap();
            assert!(d.iter().zip(&v).all(|(a, x)| a.to_bits() == x.to_bits()));
            for cut in 0..b.len() {
                assert!(
                    decode_floats(&b[..cut], n).is_err(),
                    "cut at {cut} of {}",
                    b.len()
                );
            }
            let (mut ks, mut ms) = (Vec::new(), Vec::new());
            let mut hist = vec![0u32; DECJ_ALPHABET];
            deck_search(&v, &mut ks, &mut ms, &mut hist).unwrap();
            let deck = deck_columns(&ks, &ms, usize::MAX).unwrap();
            assert!(
                b.len() < deck.len(),
                "n = {n}: DECJ {} vs DECK {}",
                b.len(),
                deck.len()
            );
            // DECK, which earlier encoders wrote, still decodes
            let d = decode_floats(&deck, n).unwrap();
            assert!(d.iter().zip(&v).all(|(a, x)| a.to_bits() == x.to_bits()));
        }
    }

    /// The vector search gives the scalar one's answers (each value's smallest exponent),
    /// and gives up on the same columns: decimals of every length up to 18 places, integers,
    /// huge and special values, products around 2^51, columns of 64 to 67 values around the
    /// give-up rule.
    #[test]
    fn deck_search_vector_finds_smallest_exponents() {
        use crate::kernels::{set_cap, Tier};
        let mut next = crate::testutil::xorshift(5);
        let mut columns: Vec<Vec<f64>> = vec![float32_like(1000, 11), float32_like(67, 12)];
        let specials = [
            f64::NAN,
            -0.0,
            0.0,
            f64::INFINITY,
            5e-324,
            2.0f64.powi(52) + 1.0,
        ];
        let any: Vec<f64> = (0..3000)
            .map(|_| {
                let r = next();
                match r % 6 {
                    0 => f64::from_bits(next()),
                    1 => (r >> 20) as f64 / POW10[(r % 19) as usize],
                    2 => ((r >> 8) % 1000) as f64 - 500.0,
                    3 => specials[(r >> 8) as usize % 6],
                    4 => (r >> 11) as f64 * 0.001,
                    _ => ((r >> 40) as f64 / 7.0 * 100.0).round() / 100.0,
                }
            })
            .collect();
        columns.push(any[..777].to_vec());
        columns.push(any);
        for n in 64..68 {
            for raw in [31, 32, 33] {
                let mut c: Vec<f64> = (0..n).map(|i| 1.25 + i as f64).collect();
                for x in c.iter_mut().take(raw) {
                    *x = f64::from_bits(next() | 1 << 62);
                }
                columns.push(c);
            }
        }
        for v in &columns {
            let run = |cap| {
                set_cap(cap);
                let (mut ks, mut ms) = (Vec::new(), Vec::new());
                let mut hist = vec![0u32; DECJ_ALPHABET];
                let seen = deck_search(v, &mut ks, &mut ms, &mut hist);
                set_cap(Tier::Avx512);
                (seen.is_some(), ks, ms, hist)
            };
            let (vector, scalar) = (run(Tier::Avx2), run(Tier::Portable));
            assert_eq!(vector.0, scalar.0, "gave up differently, n = {}", v.len());
            if !vector.0 {
                assert!(vector.3.iter().all(|&c| c == 0));
                continue;
            }
            assert_eq!(vector, scalar, "n = {}", v.len());
            let mut hist = vec![0u32; DECJ_ALPHABET];
            for (i, &x) in v.iter().enumerate() {
                let (k, m) = (vector.1[i], vector.2[i]);
                let smallest = min_exponent(x).map(|(e, me)| (e as i64, me));
                assert_eq!((k, m), smallest.unwrap_or((K_RAW, x.to_bits() as i64)));
                if k == K_RAW {
                    assert_eq!(m as u64, x.to_bits());
                } else {
                    assert_eq!(((m as f64) / POW10[k as usize]).to_bits(), x.to_bits());
                }
                let b = 64 - zigzag(m).leading_zeros() as usize;
                hist[k as usize * DECJ_LENS + b] += 1;
            }
            assert_eq!(vector.3, hist);
        }
    }

    /// With DECK as well, the smaller of DECJ and DECK is kept: the integer coder may finish
    /// a column at or over its budget, and DECK, tried second with DECJ's size as its budget,
    /// must not win so (some of these columns of long decimals, a third of an even number of
    /// tenths and hundredths, do that).
    #[test]
    fn encode_deck_keeps_the_smaller() {
        let mut next = crate::testutil::xorshift(99);
        for _ in 0..3000 {
            let n = 2 + (next() % 200) as usize;
            let v: Vec<f64> = (0..n)
                .map(|i| (i as f64 * 0.1 + (next() % 3) as f64 * 0.01) / 3.0)
                .collect();
            let (mut ks, mut ms) = (Vec::new(), Vec::new());
            let mut hist = vec![0u32; DECJ_ALPHABET];
            let Some(seen) = deck_search(&v, &mut ks, &mut ms, &mut hist) else {
                continue;
            };
            let j = encode_decj(&ks, &ms, &mut hist, seen, usize::MAX)
                .0
                .unwrap();
            let d = deck_columns(&ks, &ms, usize::MAX).unwrap();
            let (got, _) = encode_deck(&v, usize::MAX, TryDeck::Always);
            assert_eq!(got.unwrap().len(), j.len().min(d.len()), "n = {n}");
        }
    }

    /// One symbol: a table without code lengths, values of no code bits (only their low
    /// bits); and mantissas of 64 bits (values that are no short decimal) read in two steps.
    #[test]
    fn decj_edge_symbols() {
        for v in [
            vec![1.2, 1.3, 1.2, 1.5, 1.4],
            vec![0.0; 9],
            (0..50)
                .map(|i| f64::from_bits(0xfff0_0000_0000_0001 + i))
                .collect(),
        ] {
            let (mut ks, mut ms) = (Vec::new(), Vec::new());
            let mut hist = vec![0u32; DECJ_ALPHABET];
            let seen = match deck_search(&v, &mut ks, &mut ms, &mut hist) {
                Some(s) => s,
                // (too many values that are no short decimal for DECK's search: code the
                // exponents and mantissas such a search would give, by hand)
                None => {
                    ks = vec![K_RAW; v.len()];
                    ms = v.iter().map(|x| x.to_bits() as i64).collect();
                    hist.fill(0);
                    let mut zor = 0;
                    for &m in &ms {
                        let z = zigzag(m);
                        hist[K_RAW as usize * DECJ_LENS + 64 - z.leading_zeros() as usize] += 1;
                        zor |= z;
                    }
                    Seen {
                        kmask: 1 << K_RAW,
                        zor,
                        extra: 63 * v.len() as u64,
                    }
                }
            };
            let b = encode_decj(&ks, &ms, &mut hist, seen, usize::MAX)
                .0
                .unwrap();
            assert!(hist.iter().all(|&c| c == 0), "counts left in the histogram");
            let d = decode_floats(&b, v.len()).unwrap();
            assert!(d.iter().zip(&v).all(|(a, x)| a.to_bits() == x.to_bits()));
        }
    }

    /// Corrupt DECJ payloads (every byte changed in turn, stream lengths out of range, the
    /// value count too large) are errors or values, never a panic; those that the checks
    /// must catch are errors.
    #[test]
    fn decj_corrupt_payloads() {
        let v = float32_like(300, 9);
        let mut b = Vec::new();
        encode_floats(&v, &mut b);
        assert_eq!(b[0], F_DECJ);
        for i in 1..b.len() {
            for x in [0x01u8, 0x80, 0xff] {
                let mut c = b.clone();
                c[i] ^= x;
                let _ = decode_floats(&c, v.len());
            }
        }
        // more values than the streams hold, or fewer than they do
        assert!(decode_floats(&b, v.len() + 1).is_err());
        assert!(decode_floats(&b, v.len() - 1).is_err());
        assert!(decode_floats(&b, 1 << 20).is_err());
        // stream lengths that exceed the column
        let mut r = Reader::new(&b[1..]);
        huffman::read_table(&mut r, DECJ_ALPHABET).unwrap();
        let at = 1 + r.pos();
        let mut c = b[..at].to_vec();
        put_varint(&mut c, 1 << 40);
        c.extend_from_slice(&b[at..]);
        assert!(decode_floats(&c, v.len()).is_err());
    }
}
