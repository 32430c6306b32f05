//! Integer column codec. A column is a tag byte and a payload; the value count `n` comes from
//! the enclosing structure.
//!
//! * `0x00` RAW: `n` little-endian int64.
//! * `0x01` CONST: one zigzag varint, repeated `n` times.
//! * `0x10 | d << 2 | r` PIPE: the values are differenced `d` times (0..=2, wrapping int64
//!   arithmetic); the first `d` values of the successive difference sequences (`x[0]`, then
//!   `x[1] - x[0]`) follow as zigzag varints, then the `n - d` residuals coded by method `r`:
//!   * `0` CONST: one zigzag varint.
//!   * `1` PACK: zigzag varint `min`, a width byte `w` (0..=64), then `(r - min)` at `w` bits
//!     each, LSB-first.
//!   * `2` HUFF: zigzag varint `c`, a byte `m` (0..=7), a Huffman table, then per residual
//!     the Huffman code of the bin of `z = zigzag(r - c)` followed by the bin's extra bits
//!     (see `bin_of`); from 64 residuals on, in 4 interleaved streams (see `streams`).
//!   * `3` SPARSE: zigzag varint `c`, varint `e` (exceptions), then `e` pairs
//!     (varint position gap, zigzag varint `r - c`); every other residual is `c`.
//!
//! docs/wire-format.md is the normative description. The encoder picks the difference order
//! from a sample, then the smallest of CONST / PACK / SPARSE / HUFF (HUFF's bin precision from
//! an entropy estimate of every precision, checked exactly for the best one or two).
use crate::bits::{BitReader, BitWriter};
use crate::bytes::{put_varint, unzigzag, varint_len, zigzag, Reader};
use crate::error::{Error, Result};
use crate::huffman;
use crate::scratch::Reused;
use std::mem::MaybeUninit;

pub const I_RAW: u8 = 0x00;
pub const I_CONST: u8 = 0x01;
pub const I_PIPE: u8 = 0x10;
/// `0x20 | d`: PIPE whose residuals are coded by RHUFF (Huffman with runs of the centre).
pub const I_RPIPE: u8 = 0x20;
const R_CONST: u8 = 0;
const R_PACK: u8 = 1;
const R_HUFF: u8 = 2;
const R_SPARSE: u8 = 3;
/// Not a PIPE method bit pattern: selects the `I_RPIPE` tag.
const R_RHUFF: u8 = 4;
/// Not a method: the residuals would take at least the budget given (nothing written).
const R_ABORT: u8 = 0xff;
const MAX_M: u32 = 7;

/// Alphabet size of the bins at precision `m`.
#[inline]
pub fn alphabet(m: u32) -> usize {
    (1usize << m) * (65 - m as usize)
}

/// Bin of `z` at precision `m`: values below `2^(m+1)` are their own bin; above, a bin is
/// given by the number `e` of bits below the top `m + 1` bits and by those top bits `t`
/// (`2^m <= t < 2^(m+1)`): bin `2^(m+1) + (e - 1) 2^m + (t - 2^m)`, extra bits `z mod 2^e`.
#[inline]
pub fn bin_of(z: u64, m: u32) -> (u32, u32) {
    // Without a branch (whether a residual is below 2^(m+1) is as good as random): with `e`
    // zero below, both cases are `t + e 2^m`, since `2^(m+1) + (e - 1) 2^m + (t - 2^m)` is.
    let e = (64 - z.leading_zeros()).saturating_sub(m + 1);
    let t = (z >> e) as u32;
    (t + (e << m), e)
}

/// (lowest value, extra bits) of bin `s` at precision `m`.
#[inline]
pub fn bin_base(s: u32, m: u32) -> (u64, u32) {
    // (`e` is zero for the bins below 2^(m+1), else `(s - 2^(m+1)) / 2^m + 1`: no branch)
    let e = (s >> m).saturating_sub(1);
    let t = (1u64 << m) | (s & ((1 << m) - 1)) as u64;
    (if e == 0 { s as u64 } else { t << e }, e)
}

thread_local! {
    static DIFFS: std::cell::Cell<Vec<i64>> = const { std::cell::Cell::new(Vec::new()) };
    static USED: std::cell::Cell<Vec<(u32, u32)>> = const { std::cell::Cell::new(Vec::new()) };
    static LEVELS: std::cell::Cell<Vec<(u32, u32)>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The bin at precision `m` holding bin `s` of precision `m + 1` (bins nest), i.e.
/// `bin_of(bin_base(s, m + 1).0, m).0`: bins below `2^(m+1)` are single values at both
/// precisions; above, dropping one bit of precision halves the bin's offset from `2^(m+2)`
/// and moves the start of the shared bins from `2^(m+2)` to `2^(m+1) + 2^m`.
#[inline]
fn coarser_bin(s: u32, m: u32) -> u32 {
    if s < 2 << m {
        s
    } else {
        (s >> 1) + (1 << m)
    }
}

/// First differences of `v`.
fn diffs(v: &[i64]) -> Reused<Vec<i64>> {
    let mut d = Reused::take(&DIFFS);
    d.extend(v.windows(2).map(|w| w[1].wrapping_sub(w[0])));
    d
}

#[inline]
fn bitlen(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// The element of rank `len / 2` (any selection gives the same value). Samples are at most
/// 64 values, most often many of them close to the median: a histogram of the values in a
/// window around a median of three (and a count of those below) finds it for a fraction of
/// the cost of a selection whenever it lies in the window.
fn median_of(sample: &mut [i64]) -> i64 {
    const WINDOW: usize = 128;
    let n = sample.len();
    let mid = n / 2;
    if n < 256 {
        let (a, b, c) = (sample[0], sample[mid], sample[n - 1]);
        let guess = a.max(b).min(a.min(b).max(c));
        let lo = guess.saturating_sub(WINDOW as i64 / 2);
        // (the last counter takes the values outside the window)
        let mut counts = [0u8; WINDOW + 1];
        let mut below = 0usize;
        for &x in sample.iter() {
            // (x >= lo: the wrapping difference is the true one)
            let d = x.wrapping_sub(lo) as u64;
            let inside = x >= lo && d < WINDOW as u64;
            counts[if inside { d as usize } else { WINDOW }] += 1;
            below += (x < lo) as usize;
        }
        if below <= mid {
            // eight counters at a time (their sum, at most n < 256, is the top byte of the
            // product), then one at a time in the group that reaches the rank
            for (g, group) in counts[..WINDOW].chunks_exact(8).enumerate() {
                let sum = u64::from_le_bytes(group.try_into().expect("8 bytes"))
                    .wrapping_mul(0x0101_0101_0101_0101)
                    >> 56;
                if below + sum as usize <= mid {
                    below += sum as usize;
                    continue;
                }
                for (i, &c) in group.iter().enumerate() {
                    below += c as usize;
                    if below > mid {
                        return lo + (8 * g + i) as i64;
                    }
                }
            }
        }
    }
    *sample.select_nth_unstable(mid).1
}

/// Picks the difference order from up to 64 sampled positions: the order whose residuals,
/// centred on a middle sample, have the fewest significant bits (ties go to the lower order).
fn choose_order(v: &[i64]) -> usize {
    let n = v.len();
    if n < 3 {
        return 0;
    }
    let step = ((n - 2) / 64).max(1);
    let mid = 2 + ((n - 2) / step / 2) * step;
    let m0 = v[mid];
    let m1 = v[mid].wrapping_sub(v[mid - 1]);
    let m2 = m1.wrapping_sub(v[mid - 1].wrapping_sub(v[mid - 2]));
    let mut cost = [0u64, 4, 8];
    // positions 2, 2 + step, ... below n, each with the two before it
    for w in v.windows(3).step_by(step) {
        let &[a, b, x] = w else { unreachable!() };
        let d1 = x.wrapping_sub(b);
        let d2 = d1.wrapping_sub(b.wrapping_sub(a));
        cost[0] += bitlen(zigzag(x.wrapping_sub(m0))) as u64;
        cost[1] += bitlen(zigzag(d1.wrapping_sub(m1))) as u64;
        cost[2] += bitlen(zigzag(d2.wrapping_sub(m2))) as u64;
    }
    let mut best = 0;
    for d in 1..3 {
        if cost[d] < cost[best] {
            best = d;
        }
    }
    best
}

pub fn encode_ints(v: &[i64], out: &mut Vec<u8>) {
    encode_ints_within(v, out, usize::MAX);
}

/// Like `encode_ints`, but may give up (leaving `out` as it was, returning `false`) once the
/// column is known to take `budget` bytes or more: callers that only keep a candidate smaller
/// than their best so far skip the rest of the work. When it returns `true` the bytes are
/// those `encode_ints` writes (which may still be `budget` bytes or more).
pub fn encode_ints_within(v: &[i64], out: &mut Vec<u8>, budget: usize) -> bool {
    let n = v.len();
    if n == 0 {
        out.push(I_RAW);
        return true;
    }
    if v.iter().all(|&x| x == v[0]) {
        out.push(I_CONST);
        put_varint(out, zigzag(v[0]));
        return true;
    }
    let d = choose_order(v);
    let start = out.len();
    // the column is never larger than RAW: only a budget below that size can be exceeded
    let budget = if budget <= 1 + 8 * n {
        budget
    } else {
        usize::MAX
    };
    out.push(I_PIPE | ((d as u8) << 2));
    let rest = |out: &Vec<u8>| budget.saturating_sub(out.len() - start);
    let method = match d {
        0 => encode_residuals(v, out, rest(out)),
        1 => {
            put_varint(out, zigzag(v[0]));
            encode_residuals(&diffs(v), out, rest(out))
        }
        _ => {
            let mut d = diffs(v);
            put_varint(out, zigzag(v[0]));
            put_varint(out, zigzag(d[0]));
            // second differences in place (each from two first differences not yet replaced)
            for i in 0..d.len() - 1 {
                d[i] = d[i + 1].wrapping_sub(d[i]);
            }
            d.pop();
            encode_residuals(&d, out, rest(out))
        }
    };
    if method == R_ABORT {
        out.truncate(start);
        return false;
    }
    if method == R_RHUFF {
        out[start] = I_RPIPE | d as u8;
    } else {
        out[start] |= method;
    }
    // Never worse than raw.
    if out.len() - start > 1 + 8 * n {
        out.truncate(start);
        out.push(I_RAW);
        for &x in v {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    true
}

/// Residuals coded by HUFF are spread over this many interleaved bit streams (value `i` in
/// stream `i % streams`), so that a decoder can work on several at once.
pub fn streams(k: usize) -> usize {
    if k >= 64 {
        4
    } else {
        1
    }
}

/// log2 of positive integers: from a table below 4096, computed above. The table sits behind
/// a `OnceLock`, fetched once per loop (`Log2::get`) rather than per value.
#[derive(Clone, Copy)]
struct Log2(&'static [f64]);

impl Log2 {
    fn get() -> Log2 {
        static TABLE: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
        Log2(TABLE.get_or_init(|| {
            (0..4096u32)
                .map(|i| if i == 0 { 0.0 } else { (i as f64).log2() })
                .collect()
        }))
    }

    #[inline]
    fn of(self, x: u32) -> f64 {
        match self.0.get(x as usize) {
            Some(&l) => l,
            None => (x as f64).log2(),
        }
    }
}

/// Longest Huffman code for `k` residuals: the decoder fills a table of 2^len entries per
/// column, which short columns should not pay for.
fn table_bits(k: usize) -> u32 {
    (usize::BITS - k.leading_zeros()).clamp(9, huffman::MAX_CODE_LEN)
}

/// Finest bin precision estimated for wide residuals (see `centre`).
const WIDE_M: u32 = 1;

/// Finest bin precision worth its table for `k` residuals.
fn top_precision(k: usize) -> u32 {
    match k {
        0..=31 => 1,
        32..=127 => 3,
        128..=1023 => 5,
        _ => MAX_M,
    }
}

/// Bytes enough for the Huffman table of `used` symbols (a hint, to grow it only once): a
/// header varint, up to three bytes a symbol in the listing, half a byte a length.
fn table_capacity(used: usize) -> usize {
    4 + 4 * used
}

/// Size of a payload known to lie in `lo..=hi` bytes: Huffman streams each end on a byte
/// boundary and all but the last carry their length, so their exact size is only known once
/// written; the bounds are enough to decide between codings almost always.
#[derive(Clone, Copy, Debug)]
struct Size {
    lo: usize,
    hi: usize,
}

impl Size {
    fn exact(n: usize) -> Size {
        Size { lo: n, hi: n }
    }
}

/// Bytes taken by `ns` streams carrying `bits` bits in all, lengths of the first ones included.
fn streams_size(bits: u64, ns: usize) -> Size {
    let lo = bits.div_ceil(8) as usize;
    // each stream rounds up by less than a byte
    let hi = ((bits + 7 * ns as u64) / 8) as usize;
    if ns == 1 {
        return Size { lo, hi };
    }
    Size {
        lo: lo + (ns - 1),
        hi: hi + (ns - 1) * varint_len(hi as u64),
    }
}

/// Statistics of the residuals gathered in one pass, shared by every coding.
struct Stats {
    /// the centre of HUFF, SPARSE and RHUFF (see `centre`)
    c: i64,
    lo: i64,
    hi: i64,
    /// residuals other than the centre
    exceptions: usize,
    /// maximal runs of the centre (counted from `RHUFF_MIN` residuals on, else 0)
    run_starts: usize,
    /// precision of `used`
    top_m: u32,
    /// used bins of `zigzag(r - c)` at `top_m`, increasing, with their counts
    used: Reused<Vec<(u32, u32)>>,
}

/// Columns from this many residuals on may be coded by RHUFF.
const RHUFF_MIN: usize = 1024;

/// The centre of the residuals (see `centre`) and the finest bin precision estimated for
/// them: coarse precisions only for wide residuals (on the shared sensor data, this changes
/// the size of their columns by 0.01 % at most).
fn centre_and_precision(r: &[i64]) -> (i64, u32) {
    let (c, wide) = centre(r);
    let top_m = if wide {
        top_precision(r.len()).min(WIDE_M)
    } else {
        top_precision(r.len())
    };
    (c, top_m)
}

#[cfg(test)]
fn stats(r: &[i64]) -> Stats {
    stats_around(r, centre_and_precision(r))
}

/// `Stats` of `r` around centre `c`, with bins at precision `top_m`.
fn stats_around(r: &[i64], (c, top_m): (i64, u32)) -> Stats {
    if r.len() >= RHUFF_MIN {
        stats_with::<true>(r, c, top_m)
    } else {
        stats_with::<false>(r, c, top_m)
    }
}

/// `stats_around`; the runs of the centre (which only RHUFF needs) are counted with `RUNS`,
/// else `run_starts` is 0.
#[inline(always)]
fn stats_with<const RUNS: bool>(r: &[i64], c: i64, top_m: u32) -> Stats {
    let k = r.len();
    let mut hist = take_hist(alphabet(top_m));
    let (mut lo, mut hi) = (r[0], r[0]);
    let mut run_starts = 0usize;
    let mut prev_on = false;
    for &x in r {
        lo = lo.min(x);
        hi = hi.max(x);
        if RUNS {
            let on = x == c;
            run_starts += (on && !prev_on) as usize;
            prev_on = on;
        }
        let b = bin_of(zigzag(x.wrapping_sub(c)), top_m).0;
        hist[b as usize] += 1;
    }
    // bin 0 holds exactly the centre
    let exceptions = k - hist[0] as usize;
    // The last used bin is that of `lo` or `hi`: bins grow with `zigzag(x - c)`, which (without
    // overflow) only grows away from the centre. With overflow, all bins are looked at.
    let top_bin = match (lo.checked_sub(c), hi.checked_sub(c)) {
        (Some(a), Some(b)) => bin_of(zigzag(a), top_m).0.max(bin_of(zigzag(b), top_m).0),
        _ => alphabet(top_m) as u32 - 1,
    };
    let used = drain_hist(hist, top_bin, k);
    Stats {
        c,
        lo,
        hi,
        exceptions,
        run_starts,
        top_m,
        used,
    }
}

/// A Huffman coding decided but not written yet: HUFF (`runs` false) or RHUFF.
struct HuffPlan {
    m: u32,
    /// used symbols (increasing for HUFF; value bins then run symbols for RHUFF) and lengths
    syms: Vec<u32>,
    lens: Vec<u8>,
    table: Vec<u8>,
    size: Size,
}

/// What CONST / PACK / SPARSE / HUFF would write.
enum Basic {
    Const,
    PackOrSparse { w: u32, pack: usize, sparse: usize },
    Huff(HuffPlan),
}

/// Writes the residual payload, returns the method; `R_ABORT` (nothing written) when the
/// payload would take at least `budget` bytes. Every coding is sized before any is written,
/// and only the smallest is written (both, to compare, in the rare case their size bounds
/// overlap): the bytes are those of writing each and keeping the smallest.
fn encode_residuals(r: &[i64], out: &mut Vec<u8>, budget: usize) -> u8 {
    let k = r.len();
    let centred = centre_and_precision(r);
    // (only for wide residuals, under four bits a residual: the bound, which only counts
    // the bits beyond the finest bins, rarely rules out other columns, and its pass would
    // then be spent for nothing)
    if centred.1 <= WIDE_M && budget < k.div_ceil(2) && extra_bits_reach(r, centred, budget) {
        return R_ABORT;
    }
    let st = stats_around(r, centred);
    if st.lo == st.hi {
        put_varint(out, zigzag(st.lo));
        return R_CONST;
    }
    let on_centre = k - st.exceptions;
    // RHUFF (runs of the centre are one token) pays for its larger table on long columns only
    // (short ones have SPARSE), and only when many residuals sit on the centre in long runs
    // (a lone centre value already costs HUFF about a bit).
    let rhuff_tokens = (k >= RHUFF_MIN && on_centre * 3 >= k && on_centre >= 4 * st.run_starts)
        .then_some(st.exceptions + st.run_starts);
    // every RHUFF token takes a bit at least, after the centre, the precision and the table
    let rhuff_min = rhuff_tokens.map_or(usize::MAX, |t| 3 + t.div_ceil(8));
    let basic = match plan_basic(r, &st, budget, rhuff_min) {
        Some(b) => b,
        None => return R_ABORT,
    };
    let basic_size = match &basic {
        Basic::Const => unreachable!("lo != hi"),
        Basic::PackOrSparse { pack, sparse, .. } => Size::exact(*pack.min(sparse)),
        Basic::Huff(p) => p.size,
    };
    let rhuff = match rhuff_tokens {
        Some(_) if rhuff_min < basic_size.hi => Some(plan_rhuff(r, &st)),
        _ => None,
    };
    let fin = match &rhuff {
        Some(rh) if rh.size.lo < basic_size.hi => Size {
            lo: rh.size.lo.min(basic_size.lo),
            hi: rh.size.hi.min(basic_size.hi),
        },
        _ => basic_size,
    };
    if budget != usize::MAX && fin.lo >= budget {
        return R_ABORT;
    }
    let write_basic = |out: &mut Vec<u8>| match &basic {
        Basic::Const => unreachable!("lo != hi"),
        Basic::PackOrSparse { w, pack, sparse } => {
            write_pack_or_sparse(r, out, st.c, st.lo, *w, st.exceptions, *pack, *sparse)
        }
        Basic::Huff(p) => {
            write_huff(r, out, st.c, p);
            R_HUFF
        }
    };
    let Some(rh) = rhuff else {
        return write_basic(out);
    };
    if rh.size.lo >= basic_size.hi {
        return write_basic(out);
    }
    let start = out.len();
    write_rhuff(r, out, st.c, &rh);
    if rh.size.hi < basic_size.lo {
        return R_RHUFF;
    }
    // overlapping bounds: write the other one too and keep the smaller (RHUFF only if smaller)
    let mut other = Vec::with_capacity(basic_size.hi);
    let method = write_basic(&mut other);
    if other.len() <= out.len() - start {
        out.truncate(start);
        out.extend_from_slice(&other);
        method
    } else {
        R_RHUFF
    }
}

/// The residuals cannot be coded in fewer than `budget` bytes, by their extra bits alone. A
/// quick pass without a histogram: a candidate far larger than the best so far gives up
/// before the statistics pass. Every coding pays at least the extra bits of each residual at the finest
/// precision `top_m` around the centre `c`: HUFF and RHUFF (value tokens) at a precision of
/// at most `top_m`, whose bins carry no fewer extra bits; SPARSE a varint of 8 bits per 7
/// bits of each `zigzag(r - c)` that is not zero; PACK `bitlen(hi - lo)` bits a residual,
/// no fewer since the centre lies within `lo..=hi` (it is a sampled residual, or zero when
/// zero was sampled).
fn extra_bits_reach(r: &[i64], (c, top_m): (i64, u32), budget: usize) -> bool {
    let need = 8 * budget as u64;
    let mut bits = 0u64;
    for chunk in r.chunks(256) {
        bits += chunk
            .iter()
            .map(|&x| bitlen(zigzag(x.wrapping_sub(c))).saturating_sub(top_m + 1) as u64)
            .sum::<u64>();
        if bits >= need {
            return true;
        }
    }
    false
}

/// The centre of HUFF, SPARSE and RHUFF: the median of a sample of the residuals, or zero;
/// and whether the residuals are wide around it: most of the sampled residuals off the centre
/// (eight at least) 2^13 or more away, however many sit on it (at fine precisions the bins
/// of such residuals hold one or two each, whose table entries cost more than the shape they
/// capture, and a histogram at those precisions is long to fill, read and coarsen).
fn centre(r: &[i64]) -> (i64, bool) {
    let step = (r.len() / 64).max(1);
    let mut sample = [0i64; 64];
    let mut ns = 0;
    for &x in r.iter().step_by(step).take(64) {
        sample[ns] = x;
        ns += 1;
    }
    let sample = &mut sample[..ns];
    let median = median_of(sample);
    let wide = |c: i64| {
        // (short columns are quick to estimate at every precision: not worth the count)
        if r.len() < 128 {
            return (c, false);
        }
        let (mut far, mut off) = (0usize, 0usize);
        for &x in sample.iter() {
            let z = zigzag(x.wrapping_sub(c));
            far += (z >= 1 << 13) as usize;
            off += (z != 0) as usize;
        }
        (c, off >= 8 && far >= off - off / 2)
    };
    // Zero, when frequent in the sample but not the median (a sensor at rest among spread
    // readings), is a better centre if it is cheaper for the sample: each zero would
    // otherwise pay its distance to the median in extra bits (and SPARSE and RHUFF count
    // their exceptions and runs against the centre).
    if median == 0 || sample.iter().filter(|&&x| x == 0).count() * 4 <= ns {
        return wide(median);
    }
    let cost = |c: i64| -> u64 {
        sample
            .iter()
            .map(|&x| bitlen(zigzag(x.wrapping_sub(c))) as u64)
            .sum()
    };
    wide(if cost(0) < cost(median) { 0 } else { median })
}

/// RHUFF: like HUFF, but every maximal run of residuals equal to the centre is one token (run
/// symbol `j` = `alphabet(m) + j`, then `j` extra bits: a run of `2^j + extra` values); other
/// residuals are value tokens coded as in HUFF. Tokens are spread over the streams in turn.
/// Its value bins come from those of HUFF (bins nest; bin 0 holds exactly the centre).
fn plan_rhuff(r: &[i64], st: &Stats) -> HuffPlan {
    let k = r.len();
    let c = st.c;
    let values = st.exceptions;
    // (not finer than the bins HUFF counted)
    let top_m = top_precision(values + 1).min(st.top_m);
    let mut used = Reused::take(&LEVELS);
    for &(s, n) in st.used.iter() {
        if s == 0 {
            continue;
        }
        let b = (top_m..st.top_m).rev().fold(s, coarser_bin);
        match used.last_mut() {
            Some(last) if last.0 == b => last.1 += n,
            _ => used.push((b, n)),
        }
    }
    let mut runs = [0u32; 64];
    let mut i = 0;
    while i < k {
        if r[i] == c {
            let mut j = i + 1;
            while j < k && r[j] == c {
                j += 1;
            }
            runs[(bitlen((j - i) as u64) - 1) as usize] += 1;
            i = j;
        } else {
            i += 1;
        }
    }
    let run_syms: Vec<(u32, u32)> = runs
        .iter()
        .enumerate()
        .filter(|(_, &n)| n > 0)
        .map(|(j, &n)| (j as u32, n))
        .collect();
    let nt = (values + st.run_starts) as u32;
    let run_extra: u64 = run_syms.iter().map(|&(j, n)| j as u64 * n as u64).sum();
    // precision by entropy estimate, as for HUFF
    let log2 = Log2::get();
    let mut best: Option<(f64, u32, u64)> = None;
    let (span, extras) = push_levels(&mut used, top_m);
    let level = |m: u32| &used[span[m as usize].0..span[m as usize].1];
    for m in 0..=top_m {
        let merged = level(m);
        let extra = run_extra + extras[m as usize];
        let lt = log2.of(nt);
        let h: f64 = merged
            .iter()
            .chain(run_syms.iter())
            .map(|&(_, n)| n as f64 * (lt - log2.of(n)))
            .sum();
        let syms = (merged.len() + run_syms.len()) as f64;
        let est = h + extra as f64 + 0.03 * nt as f64 + 8.0 * (1.7 * syms + 2.0);
        if best.is_none_or(|b| est < b.0) {
            best = Some((est, m, extra));
        }
    }
    let (_, m, extra) = best.expect("at least one precision");
    let merged = level(m);
    let base = alphabet(m) as u32;
    let mut syms: Vec<u32> = merged.iter().map(|p| p.0).collect();
    let mut counts: Vec<u32> = merged.iter().map(|p| p.1).collect();
    for &(j, n) in &run_syms {
        syms.push(base + j);
        counts.push(n);
    }
    let lens = huffman::code_lengths_limited(counts.iter().copied(), table_bits(k));
    let bits = huffman::coded_bits(counts.iter().copied(), &lens) + extra;
    let mut table = Vec::with_capacity(11 + table_capacity(syms.len()));
    put_varint(&mut table, zigzag(c));
    table.push(m as u8);
    huffman::write_table(syms.iter().copied(), &lens, &mut table);
    let body = streams_size(bits, streams(k));
    HuffPlan {
        m,
        syms,
        lens,
        size: Size {
            lo: table.len() + body.lo,
            hi: table.len() + body.hi,
        },
        table,
    }
}

/// Writes an RHUFF payload planned by `plan_rhuff`.
fn write_rhuff(r: &[i64], out: &mut Vec<u8>, c: i64, p: &HuffPlan) {
    let k = r.len();
    let m = p.m;
    let base = alphabet(m) as u32;
    let mut lut = take_lut(alphabet(m) + 64);
    huffman::for_each_code(&p.lens, |i, code| lut[p.syms[i] as usize] = code);
    out.extend_from_slice(&p.table);
    let ns = streams(k);
    let mut writers = stream_writers(ns, p.size.hi / ns + 16);
    let mut t = 0usize;
    let mut i = 0usize;
    while i < k {
        let (z, sym, e) = if r[i] == c {
            let mut j = i + 1;
            while j < k && r[j] == c {
                j += 1;
            }
            let len = (j - i) as u64;
            i = j;
            let jb = bitlen(len) - 1;
            (len, base + jb, jb)
        } else {
            let z = zigzag(r[i].wrapping_sub(c));
            i += 1;
            let (b, e) = bin_of(z, m);
            (z, b, e)
        };
        let bw = &mut writers[t % ns];
        t += 1;
        let (code, l) = lut[sym as usize];
        let l = l as u32;
        if l + e <= 57 {
            bw.write_small((code as u64) | ((z & ((1u64 << e) - 1)) << l), l + e);
        } else {
            bw.write(code as u64, l);
            bw.write(z, e);
        }
    }
    LUT.set(lut);
    finish_streams(writers, out);
}

thread_local! {
    /// Buffers of interleaved stream writers, kept by the thread between columns: a column
    /// in four streams would otherwise allocate (and free) a buffer for each.
    static STREAM_BUFS: std::cell::Cell<Vec<Vec<u8>>> = const { std::cell::Cell::new(Vec::new()) };
}

/// `ns` bit writers, each with room for `cap` bytes, on buffers kept by the thread (handed
/// back by `finish_streams`).
pub(crate) fn stream_writers(ns: usize, cap: usize) -> Vec<BitWriter> {
    let mut pool = STREAM_BUFS.take();
    let mut writers = Vec::with_capacity(ns);
    for _ in 0..ns {
        let mut b = pool.pop().unwrap_or_default();
        b.clear();
        b.reserve(cap);
        writers.push(BitWriter::new(b));
    }
    STREAM_BUFS.set(pool);
    writers
}

/// Appends the streams, each but the last preceded by its byte length, and hands their
/// buffers back to the thread.
pub(crate) fn finish_streams(writers: Vec<BitWriter>, out: &mut Vec<u8>) {
    let ns = writers.len();
    let mut pool = STREAM_BUFS.take();
    let start = pool.len();
    pool.extend(writers.into_iter().map(BitWriter::finish));
    let bodies = &pool[start..];
    for b in &bodies[..ns - 1] {
        put_varint(out, b.len() as u64);
    }
    for b in bodies {
        out.extend_from_slice(b);
    }
    // (an unusually long column's buffers are freed rather than kept)
    pool.retain(|b| b.capacity() <= crate::scratch::REUSED_MAX);
    STREAM_BUFS.set(pool);
}

thread_local! {
    /// A zeroed histogram kept between calls: the largest alphabet is 7,424 counters, which
    /// short columns should not allocate and clear each time.
    static HIST: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

thread_local! {
    /// The code lookup table of the Huffman writers, kept between calls (taken out while in
    /// use). Its entries are not cleared: only those of used symbols are read, and they are
    /// written first.
    static LUT: std::cell::Cell<Vec<(u32, u8)>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A code lookup table of at least `size` entries, of which only those written may be read.
fn take_lut(size: usize) -> Vec<(u32, u8)> {
    let mut lut = LUT.take();
    if lut.len() < size {
        lut.resize(size, (0, 0));
    }
    lut
}

/// A zeroed histogram of at least `size` counters (from the thread's cache when possible).
fn take_hist(size: usize) -> Vec<u32> {
    let mut h = HIST.with(|c| std::mem::take(&mut *c.borrow_mut()));
    if h.len() < size {
        h.resize(size, 0);
    }
    h
}

/// The used bins of `hist` (all at most `top_bin`) in increasing order with their counts;
/// zeroes them and returns the histogram to the thread's cache.
fn drain_hist(mut hist: Vec<u32>, top_bin: u32, values: usize) -> Reused<Vec<(u32, u32)>> {
    let mut used = Reused::take(&USED);
    let bins = &mut hist[..=top_bin as usize];
    if values * 4 < bins.len() {
        // few values over many bins (a short column of wide residuals): most bins are empty,
        // and the branch on each mispredicts at most once a value
        for (s, c) in bins.iter_mut().enumerate() {
            if *c > 0 {
                used.push((s as u32, *c));
                *c = 0;
            }
        }
    } else {
        // without a branch per bin (whether a bin is used is as good as random): every bin
        // is written at the end, which only moves on past a used one
        used.resize(bins.len(), (0, 0));
        let mut n = 0;
        for (s, c) in bins.iter_mut().enumerate() {
            used[n] = (s as u32, *c);
            n += (*c > 0) as usize;
            *c = 0;
        }
        used.truncate(n);
    }
    HIST.with(|c| *c.borrow_mut() = hist);
    used
}

/// Plans CONST, PACK, SPARSE or HUFF; `None` when the payload is known to take at least
/// `budget` bytes, and so would any alternative coding whose lower bound is `alt_min`.
fn plan_basic(r: &[i64], st: &Stats, budget: usize, alt_min: usize) -> Option<Basic> {
    let k = r.len();
    let (c, lo, hi, exceptions) = (st.c, st.lo, st.hi, st.exceptions);
    if lo == hi {
        return Some(Basic::Const);
    }
    let w = bitlen(hi.wrapping_sub(lo) as u64);
    let pack_size = varint_len(zigzag(lo)) + 1 + (k * w as usize).div_ceil(8);
    let sparse_size = if exceptions * 4 <= k {
        let mut s = varint_len(zigzag(c)) + varint_len(exceptions as u64);
        let mut prev = 0usize;
        for (i, &x) in r.iter().enumerate() {
            if x != c {
                s += varint_len((i - prev) as u64) + varint_len(zigzag(x.wrapping_sub(c)));
                prev = i;
            }
        }
        s
    } else {
        usize::MAX
    };
    let pack_or_sparse = Basic::PackOrSparse {
        w,
        pack: pack_size,
        sparse: sparse_size,
    };
    // Lower bound of the payload: residuals that are not all equal take at least a bit each
    // in HUFF (two bins or more: codes of >= 1 bit; one bin: >= 1 extra bit) and in PACK.
    let head = varint_len(zigzag(c)) + 1;
    let top_m = st.top_m;
    // Lower bound of HUFF at every precision: no prefix code beats the entropy of its bins,
    // and a coarser precision never costs less than a finer one (each coarse bin splits into
    // finer bins whose choice its extra bits pay for in full: `h(m) + x(m) >= h(m+1) +
    // x(m+1)`), so the finest precision's entropy and extra bits bound them all. The table
    // lists every used bin, and precision 0 uses the fewest (bins nest): with `u0` bins there
    // it takes a header byte, then a listing of `u0` varints or of three bytes at least, then
    // half a byte of code length per bin (none for a single bin); streams after the first
    // carry their length. When this exceeds PACK or SPARSE, HUFF could never be chosen.
    let log2 = Log2::get();
    let huff_lb = {
        let lk = log2.of(k as u32);
        let (mut h, mut extra) = (0.0f64, 0u64);
        // bins at precision 0 are the values 0 and 1, then one per bit length
        let (mut u0, mut last0) = (0usize, u64::MAX);
        for &(s, cnt) in st.used.iter() {
            h += cnt as f64 * (lk - log2.of(cnt));
            let (base, e) = bin_base(s, top_m);
            extra += e as u64 * cnt as u64;
            let b0 = if base < 2 { base } else { bitlen(base) as u64 };
            u0 += (b0 != last0) as usize;
            last0 = b0;
        }
        let table = if u0 <= 1 {
            2
        } else {
            1 + u0.min(3) + u0.div_ceil(2)
        };
        // (a margin for the rounding of the sum)
        head + table
            + (streams(k) - 1)
            + ((h * (1.0 - 1e-9) - 1.0).max(0.0) as u64 + extra).div_ceil(8) as usize
    };
    if budget != usize::MAX && pack_size.min(sparse_size).min(huff_lb).min(alt_min) >= budget {
        return None;
    }
    if huff_lb > pack_size.min(sparse_size) {
        return Some(pack_or_sparse);
    }

    // Huffman: estimate every precision from the entropy of its bins, build the best one.
    let kf = k as f64;
    // bins and counts at every precision, coarsest from the next finer one (bins nest: a bin
    // at precision m + 1 lies within one bin at precision m), with the extra bits they cost
    // all levels in one buffer, finest first: level m is `flat[span[m].0..span[m].1]`
    let mut flat = Reused::take(&LEVELS);
    flat.extend_from_slice(&st.used);
    let (span, extras) = push_levels(&mut flat, top_m);
    let level = |m: u32| &flat[span[m as usize].0..span[m as usize].1];
    let mut ests = [(0.0f64, 0u32); MAX_M as usize + 1];
    let lk = log2.of(k as u32);
    for m in 0..=top_m {
        let merged = level(m);
        let extra = extras[m as usize];
        let h: f64 = merged
            .iter()
            .map(|&(_, cnt)| cnt as f64 * (lk - log2.of(cnt)))
            .sum();
        // Huffman pays up to ~0.09 bit per symbol over the entropy on typical data
        let span = merged.last().map_or(0, |l| l.0 - merged[0].0 + 1) as f64;
        let listing = (1.2 * merged.len() as f64).min(span / 8.0 + 2.0);
        let est = h + extra as f64 + 0.03 * kf + 8.0 * (0.5 * merged.len() as f64 + listing + 2.0);
        ests[m as usize] = (est, m);
    }
    let ests = &mut ests[..=top_m as usize];
    // (stable: equal estimates keep the lower precision first)
    ests.sort_by(|a, b| a.0.total_cmp(&b.0));
    if (ests[0].0 / 8.0) as usize > pack_size.min(sparse_size) + 8 {
        return Some(pack_or_sparse);
    }
    // exact sizes for the best estimate, and for large columns the runner-up as well
    let ns = streams(k);
    let tries = if k >= 1024 { 2 } else { 1 };
    // (size, precision, code lengths, payload bits, table bytes)
    type Candidate = (usize, u32, Vec<u8>, u64, Vec<u8>);
    let mut chosen: Option<Candidate> = None;
    for &(_, m) in ests.iter().take(tries) {
        let merged = level(m);
        let counts = merged.iter().map(|p| p.1);
        let lens = huffman::code_lengths_limited(counts.clone(), table_bits(k));
        let bits: u64 = huffman::coded_bits(counts, &lens) + extras[m as usize];
        let mut table = Vec::with_capacity(table_capacity(merged.len()));
        huffman::write_table(merged.iter().map(|p| p.0), &lens, &mut table);
        // several streams each end on a byte boundary and the first ones carry their length
        let size = varint_len(zigzag(c))
            + 1
            + table.len()
            + bits.div_ceil(8) as usize
            + (ns - 1) * (varint_len(bits / 8 / ns as u64) + 1);
        if chosen.as_ref().is_none_or(|ch| size < ch.0) {
            chosen = Some((size, m, lens, bits, table));
        }
    }
    let (huff_size, m, lens, bits, table) = chosen.expect("at least one precision");
    if huff_size > pack_size || huff_size > sparse_size {
        return Some(pack_or_sparse);
    }
    let syms = level(m).iter().map(|p| p.0).collect();
    let body = streams_size(bits, ns);
    Some(Basic::Huff(HuffPlan {
        m,
        syms,
        lens,
        size: Size {
            lo: head + table.len() + body.lo,
            hi: head + table.len() + body.hi,
        },
        table,
    }))
}

/// Bins at every precision below `top_m`, for the bins at `top_m` that `flat` holds
/// (increasing, with their counts): appends each coarser level, built from the next finer
/// one (bins nest). Returns where each level lies in `flat` and the extra bits it costs.
#[allow(clippy::type_complexity)]
fn push_levels(
    flat: &mut Vec<(u32, u32)>,
    top_m: u32,
) -> (
    [(usize, usize); MAX_M as usize + 1],
    [u64; MAX_M as usize + 1],
) {
    let mut span = [(0usize, 0usize); MAX_M as usize + 1];
    let mut extras = [0u64; MAX_M as usize + 1];
    span[top_m as usize] = (0, flat.len());
    extras[top_m as usize] = flat
        .iter()
        .map(|&(bin, cnt)| bin_base(bin, top_m).1 as u64 * cnt as u64)
        .sum();
    for m in (0..top_m).rev() {
        let (a, b) = span[m as usize + 1];
        // A bin from 2^(m+1) on costs one extra bit more at precision m than its part at
        // m + 1 (the values below are their own bins at both).
        if a == b || flat[b - 1].0 < 2 << m {
            // (none, or) every bin is a single value, at m as at m + 1
            span[m as usize] = (a, b);
            extras[m as usize] = extras[m as usize + 1];
            continue;
        }
        let start = flat.len();
        // the single values below 2^(m+1) stay as they are: copied at once (the first bin
        // above, coarsened, is past all of them)
        let exact = a + flat[a..b].partition_point(|&(s, _)| s < 2 << m);
        flat.extend_from_within(a..exact);
        // Bins stay increasing: each merges into the last one written or starts anew. Room
        // for all of them is made first (zeroed), so that a bin is added to its slot without
        // a branch on whether it merges (as good as random).
        let mut w = flat.len();
        flat.resize(w + (b - exact), (0, 0));
        let mut prev = u32::MAX;
        let mut more = 0u64;
        for i in exact..b {
            let (s, cnt) = flat[i];
            let bin = coarser_bin(s, m);
            more += cnt as u64;
            let at = w - (bin == prev) as usize;
            flat[at].0 = bin;
            flat[at].1 += cnt;
            w = at + 1;
            prev = bin;
        }
        flat.truncate(w);
        span[m as usize] = (start, flat.len());
        extras[m as usize] = extras[m as usize + 1] + more;
    }
    (span, extras)
}

/// Writes a HUFF payload planned by `plan_basic`.
fn write_huff(r: &[i64], out: &mut Vec<u8>, c: i64, p: &HuffPlan) {
    // When every used bin is a single value (narrow residuals: ranks, small counts), each
    // residual is its own bin and `bin_of` is skipped.
    if p.syms[p.syms.len() - 1] < 2 << p.m {
        write_huff_with::<true>(r, out, c, p)
    } else {
        write_huff_with::<false>(r, out, c, p)
    }
}

fn write_huff_with<const NARROW: bool>(r: &[i64], out: &mut Vec<u8>, c: i64, p: &HuffPlan) {
    let ns = streams(r.len());
    put_varint(out, zigzag(c));
    out.push(p.m as u8);
    out.extend_from_slice(&p.table);
    // code of each bin, indexed by bin - first used bin (only used bins are looked up)
    let syms = &p.syms;
    let first = syms[0];
    let mut lut = take_lut((syms[syms.len() - 1] - first) as usize + 1);
    huffman::for_each_code(&p.lens, |i, code| lut[(syms[i] - first) as usize] = code);
    let m = p.m;
    // (a function, not a closure, to be inlined at every use)
    #[inline(always)]
    fn put_value<const NARROW: bool>(
        bw: &mut BitWriter,
        x: i64,
        c: i64,
        m: u32,
        first: u32,
        lut: &[(u32, u8)],
    ) {
        let z = zigzag(x.wrapping_sub(c));
        let (b, e) = if NARROW { (z as u32, 0) } else { bin_of(z, m) };
        let (code, l) = lut[(b - first) as usize];
        let (code, l) = (code as u64, l as u32);
        if l + e <= 57 {
            bw.write_small(code | ((z & ((1u64 << e) - 1)) << l), l + e);
        } else {
            bw.write(code, l);
            bw.write(z, e);
        }
    }
    let put = |bw: &mut BitWriter, x: i64| put_value::<NARROW>(bw, x, c, m, first, &lut);
    if ns == 1 {
        // one stream: straight into `out`
        let mut bw = BitWriter::new(std::mem::take(out));
        bw.reserve(p.size.hi);
        for &x in r {
            put(&mut bw, x);
        }
        *out = bw.finish();
        LUT.set(lut);
        return;
    }
    // four streams, value `i` in stream `i % 4` (each stream its own writer in the loop)
    debug_assert_eq!(ns, 4);
    let mut writers = stream_writers(4, p.size.hi / 4 + 16);
    let mut quads = r.chunks_exact(4);
    for q in &mut quads {
        let [w0, w1, w2, w3] = &mut writers[..] else {
            unreachable!("four writers")
        };
        put(w0, q[0]);
        put(w1, q[1]);
        put(w2, q[2]);
        put(w3, q[3]);
    }
    for (bw, &x) in writers.iter_mut().zip(quads.remainder()) {
        put(bw, x);
    }
    LUT.set(lut);
    finish_streams(writers, out);
}

#[allow(clippy::too_many_arguments)]
fn write_pack_or_sparse(
    r: &[i64],
    out: &mut Vec<u8>,
    c: i64,
    lo: i64,
    w: u32,
    exceptions: usize,
    pack_size: usize,
    sparse_size: usize,
) -> u8 {
    if sparse_size <= pack_size {
        put_varint(out, zigzag(c));
        put_varint(out, exceptions as u64);
        let mut prev = 0usize;
        for (i, &x) in r.iter().enumerate() {
            if x != c {
                put_varint(out, (i - prev) as u64);
                put_varint(out, zigzag(x.wrapping_sub(c)));
                prev = i;
            }
        }
        R_SPARSE
    } else {
        put_varint(out, zigzag(lo));
        out.push(w as u8);
        let body = std::mem::take(out);
        *out = crate::bits::pack(r.iter().map(|&x| x.wrapping_sub(lo) as u64), w, body);
        R_PACK
    }
}

/// Decodes an integer column of `n` values and maps each through `f` on the way out (the
/// float codec turns decimal mantissas into floats).
pub fn decode_ints_map<T, F: FnMut(i64) -> T>(data: &[u8], n: usize, f: F) -> Result<Vec<T>> {
    // the integers go through a buffer kept by the thread (no allocation, no clearing)
    let mut ints = Reused::take(&MAP_SCRATCH);
    decode_ints_into(data, n, &mut ints)?;
    Ok(ints.iter().copied().map(f).collect())
}

thread_local! {
    static MAP_SCRATCH: std::cell::Cell<Vec<i64>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Decodes an integer column of `n` values.
pub fn decode_ints(data: &[u8], n: usize) -> Result<Vec<i64>> {
    let mut out = Vec::new();
    decode_ints_into(data, n, &mut out)?;
    Ok(out)
}

/// `decode_ints` into `out` (its previous contents are dropped; callers that decode many
/// columns keep one buffer: its memory is not allocated nor cleared again).
pub fn decode_ints_into(data: &[u8], n: usize, out: &mut Vec<i64>) -> Result<()> {
    let mut r = Reader::new(data);
    let tag = r.u8("integer column tag")?;
    match tag {
        I_RAW => {
            let raw = r.take(n * 8, "raw integer column")?;
            out.clear();
            out.reserve_exact(n);
            out.extend(
                raw.chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap())),
            );
        }
        I_CONST => {
            let x = unzigzag(r.varint("constant")?);
            out.clear();
            out.resize(n, x);
        }
        t if t & 0xf0 == I_PIPE || (I_RPIPE..=I_RPIPE + 2).contains(&t) => {
            let rpipe = t & 0xf0 == I_RPIPE;
            let d = if rpipe {
                (t & 3) as usize
            } else {
                ((t >> 2) & 3) as usize
            };
            if d > 2 || d > n {
                return Err(Error::corrupt(format!(
                    "bad difference order {d} for {n} values"
                )));
            }
            let method = if rpipe { R_RHUFF } else { t & 3 };
            // every value is written below, into the spare room (not zeroed first: that
            // would be one more pass over the column)
            out.clear();
            out.reserve(n);
            let v = &mut out.spare_capacity_mut()[..n];
            match d {
                0 => decode_residuals(method, &mut r, v, None)?,
                1 => {
                    let first = unzigzag(r.varint("first value")?);
                    v[0].write(first);
                    decode_residuals(method, &mut r, &mut v[1..], Some(first))?;
                }
                _ => {
                    v[0].write(unzigzag(r.varint("first value")?));
                    let diff = unzigzag(r.varint("first difference")?);
                    v[1].write(diff);
                    decode_residuals(method, &mut r, &mut v[2..], Some(diff))?;
                }
            }
            // SAFETY: the first `d` elements were written just above, and `decode_residuals`
            // writes every element of the slice it is given when it returns `Ok` (it did):
            // all of the first `n` spare elements are initialised; the capacity is >= `n`.
            unsafe { out.set_len(n) };
            if d == 2 {
                let mut acc = 0i64;
                for x in out.iter_mut() {
                    acc = acc.wrapping_add(*x);
                    *x = acc;
                }
            }
        }
        t => {
            return Err(Error::corrupt(format!(
                "unknown integer column strategy 0x{t:02x}"
            )))
        }
    }
    if !r.is_empty() {
        return Err(Error::corrupt(format!(
            "integer column has {} trailing bytes",
            r.remaining()
        )));
    }
    Ok(())
}

/// 64 bits of `data` starting at bit `off` (zeros past the end), shifted so that bit `off`
/// is bit 0: at least 57 meaningful bits.
#[inline(always)]
pub(crate) fn window(data: &[u8], off: u64) -> u64 {
    let byte = (off >> 3) as usize;
    let w = match data.get(byte..byte + 8) {
        Some(b) => u64::from_le_bytes(b.try_into().unwrap()),
        None => window_tail(data, byte),
    };
    w >> (off & 7)
}

#[cold]
#[inline(never)]
fn window_tail(data: &[u8], byte: usize) -> u64 {
    let mut b = [0u8; 8];
    if byte < data.len() {
        let n = (data.len() - byte).min(8);
        b[..n].copy_from_slice(&data[byte..byte + n]);
    }
    u64::from_le_bytes(b)
}

const LOW_MASK: [u64; 65] = {
    let mut m = [0u64; 65];
    let mut i = 1;
    while i < 65 {
        m[i] = u64::MAX >> (64 - i);
        i += 1;
    }
    m
};

/// Decoding table entry: bits consumed in all (code + extra bits, up to 75) in bits 0..7,
/// run flag (RHUFF) in bit 7, extra bits still to read `eb` in bits 8..14, top bits in bits
/// 16..32: the token is `top << eb | next eb bits after the code`. Where a code and all its
/// extra bits fit the table index (and the token fits 16 bits), the extra bits are resolved
/// by the table itself: one entry per value of them, with `eb` 0 and the whole token as top.
const E_RUN: u32 = 0x80;
type Table = [u32; 1 << huffman::MAX_CODE_LEN];

/// Lays out the decoding table of `dec` (entries of the symbols as above; `run` says whether
/// symbol index `i` is a run symbol) in `table[..2^dec.bits]`.
///
/// An entry of a code of `l` bits (with its resolved extra bits: of `l + eb` bits) belongs at
/// every index whose low `l` bits are the code. By increasing length `L`: the entries of the
/// codes of `L` bits are written once, at their code (below 2^L), then `table[..2^L]` is
/// copied to `table[2^L..2^(L+1)]`, which repeats every shorter code at its place. The code
/// is complete (checked by `read_table`), so every index ends up written.
fn fill_table(dec: &huffman::Decoder, table: &mut Table, info: impl Fn(usize) -> (u32, u32, bool)) {
    let bits = dec.bits;
    let used = dec.codes.len();
    if bits == 0 || used > 1 << huffman::MAX_CODE_LEN {
        // one symbol of no bits (every index is it); more symbols than a complete code of
        // MAX_CODE_LEN bits has cannot come from read_table
        let (top, eb, run) = info(0);
        table[0] = (top << 16) | (eb << 8) | if run { E_RUN } else { 0 } | eb;
        return;
    }
    FILL.with(|cell| {
        let mut scratch = cell.borrow_mut();
        // per symbol: (code | code length << 16 | extra bits resolved << 24, entry, length
        // in the table), then the same sorted by length in the table (a counting sort)
        let (ents, sorted) = &mut *scratch;
        let mut count = [0u32; huffman::MAX_CODE_LEN as usize + 2];
        ents.clear();
        for (i, &(code, l)) in dec.codes.iter().enumerate() {
            let (top, eb, run) = info(i);
            let l = l as u32;
            let flag = if run { E_RUN } else { 0 };
            let ent = if eb > 0 && l + eb <= bits && ((top as u64) << eb) < 1 << 16 {
                // resolved: 2^eb entries, each with its whole token (top << eb | x), eb 0
                (
                    code | l << 16 | eb << 24,
                    ((top << eb) << 16) | flag | (l + eb),
                    l + eb,
                )
            } else {
                (code | l << 16, (top << 16) | (eb << 8) | flag | (l + eb), l)
            };
            count[ent.2 as usize + 1] += 1;
            ents.push(ent);
        }
        for l in 1..count.len() {
            count[l] += count[l - 1];
        }
        sorted.clear();
        sorted.resize(used, (0, 0, 0));
        for &ent in ents.iter() {
            let l = ent.2 as usize;
            sorted[count[l] as usize] = ent;
            count[l] += 1;
        }
        let mut next = 0usize;
        for len in 1..=bits {
            while let Some(&(c, e, tl)) = sorted.get(next) {
                if tl != len {
                    break;
                }
                let (code, l, eb) = (c & 0xffff, (c >> 16) & 0xff, c >> 24);
                for x in 0..1u32 << eb {
                    table[((code | (x << l)) as usize) & ((1 << huffman::MAX_CODE_LEN) - 1)] =
                        e + (x << 16);
                }
                next += 1;
            }
            if len < bits {
                let half = 1usize << len;
                table.copy_within(..half, half);
            }
        }
    });
}

type FillScratch = (Vec<(u32, u32, u32)>, Vec<(u32, u32, u32)>);

thread_local! {
    /// `fill_table`'s symbol lists, kept between calls (at most 4096 entries each).
    static FILL: std::cell::RefCell<FillScratch> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// The token of a stream at bit offset `off` (advanced past it) and its table entry. Streams
/// share one buffer, so a read may run into the next stream's bytes: the offsets are checked
/// against the stream ends afterwards.
#[inline(always)]
fn token(data: &[u8], off: &mut u64, table: &Table, tmask: usize) -> (u64, u32) {
    let w = window(data, *off);
    let t = table[(w as usize) & tmask & ((1 << huffman::MAX_CODE_LEN) - 1)];
    let total = t & 0x7f;
    let eb = (t >> 8) & 0x7f;
    let top = ((t >> 16) as u64) << (eb & 63);
    let z = if total <= 57 {
        // eb <= 57 here: the mask is `bzhi` where the processor has BMI2
        ((w >> (total - eb)) & ((1u64 << eb) - 1)) | top
    } else {
        token_long(data, *off, t)
    };
    *off += total as u64;
    (z, t)
}

/// A token whose code and extra bits take more than 57 bits: the extra bits in two halves.
#[cold]
#[inline(never)]
fn token_long(data: &[u8], off: u64, t: u32) -> u64 {
    let total = t & 0x7f;
    let eb = ((t >> 8) & 0x7f).min(63);
    let top = ((t >> 16) as u64) << eb;
    let at = off + (total - eb) as u64;
    let lo = window(data, at) & LOW_MASK[eb.min(32) as usize];
    let hi = window(data, at + 32) & LOW_MASK[eb.saturating_sub(32) as usize];
    (lo | (hi << 32)) | top
}

/// Writes the value `v` into `x`, or with `DELTA` the running sum `acc + v` (kept in `acc`):
/// one decoded value of the Huffman kernels.
#[inline(always)]
fn put<const DELTA: bool>(x: &mut MaybeUninit<i64>, acc: &mut i64, v: i64) {
    if DELTA {
        *acc = acc.wrapping_add(v);
        x.write(*acc);
    } else {
        x.write(v);
    }
}

/// Writes `out` from the residuals `next` returns in order: themselves, or with `acc` =
/// `Some(a)` their running sums from `a`.
#[inline(always)]
fn emit(out: &mut [MaybeUninit<i64>], acc: Option<i64>, mut next: impl FnMut() -> i64) {
    match acc {
        None => {
            for x in out {
                x.write(next());
            }
        }
        Some(mut a) => {
            for x in out {
                a = a.wrapping_add(next());
                x.write(a);
            }
        }
    }
}

/// Decodes `out.len()` residuals coded by `method` into `out`. With `acc` = `Some(a)`, writes
/// their running sums from `a` instead (`out[i] = a + r[0] + ... + r[i]`, wrapping): one
/// order of differences undone on the way. When it returns `Ok`, every element of `out` has
/// been written (`decode_ints_into` relies on it).
fn decode_residuals(
    method: u8,
    r: &mut Reader<'_>,
    out: &mut [MaybeUninit<i64>],
    acc: Option<i64>,
) -> Result<()> {
    let k = out.len();
    match method {
        R_CONST => {
            let c = unzigzag(r.varint("constant residual")?);
            emit(out, acc, || c);
        }
        R_PACK => {
            let lo = unzigzag(r.varint("pack minimum")?);
            let w = r.u8("pack width")? as u32;
            if w > 64 {
                return Err(Error::corrupt(format!("pack width {w} over 64")));
            }
            let bytes = (k * w as usize).div_ceil(8);
            let body = r.take(bytes, "packed residuals")?;
            let mut br = BitReader::new(body);
            if w <= 56 {
                emit(out, acc, || lo.wrapping_add(br.read(w) as i64));
            } else {
                emit(out, acc, || lo.wrapping_add(br.read_wide(w) as i64));
            }
            br.finish("packed residuals")?;
        }
        R_SPARSE => {
            let c = unzigzag(r.varint("sparse centre")?);
            let e = r.varint("exception count")?;
            if e > k as u64 || e > r.remaining() as u64 {
                return Err(Error::corrupt("too many exceptions"));
            }
            let mut exc: Vec<(usize, i64)> = Vec::with_capacity(e as usize);
            let mut pos = 0usize;
            for j in 0..e {
                let gap = r.varint("exception gap")?;
                if (j > 0 && gap == 0) || gap >= k as u64 {
                    return Err(Error::corrupt("exception position out of range"));
                }
                pos += gap as usize;
                if pos >= k {
                    return Err(Error::corrupt("exception position out of range"));
                }
                exc.push((pos, c.wrapping_add(unzigzag(r.varint("exception")?))));
            }
            // positions increase: the next exception is the first one left
            let mut exc = exc.into_iter().peekable();
            let mut i = 0usize;
            emit(out, acc, || {
                let x = match exc.next_if(|&(p, _)| p == i) {
                    Some((_, x)) => x,
                    None => c,
                };
                i += 1;
                x
            });
        }
        _ => {
            let c = unzigzag(r.varint("huffman centre")?);
            let m = r.u8("bin precision")? as u32;
            if m > MAX_M {
                return Err(Error::corrupt(format!("bin precision {m} over {MAX_M}")));
            }
            let runs = method == R_RHUFF;
            let values = alphabet(m);
            // A fixed-size table (only the first 2^bits entries used), so that indexing with a
            // masked window needs no bounds check.
            return SCRATCH.with(|cell| {
                let mut scratch = cell.borrow_mut();
                let (table, padded, dec) = &mut *scratch;
                huffman::read_table_into(r, values + if runs { 64 } else { 0 }, dec)?;
                let dec = &*dec;
                // a run symbol j (RHUFF) is top 1 with j extra bits
                fill_table(dec, table, |i| {
                    let s = dec.syms[i];
                    if s as usize >= values {
                        (1, s - values as u32, true)
                    } else {
                        let (base, e) = bin_base(s, m);
                        ((base >> e) as u32, e, false)
                    }
                });
                let tmask = (1usize << dec.bits) - 1;
                let kernel = if !runs {
                    Kernel::Values
                } else if rare_runs(dec, values) {
                    Kernel::RareRuns
                } else {
                    Kernel::Runs
                };
                huff_streams(r, out, c, table, tmask, padded, kernel, acc)
            });
        }
    }
    Ok(())
}

thread_local! {
    /// Per-thread decoding scratch: the Huffman table, a zero-padded copy of short streams (so
    /// that every 8-byte window read stays in bounds without a slow path) and the code table.
    static SCRATCH: std::cell::RefCell<(Box<Table>, Vec<u8>, huffman::Decoder)> =
        std::cell::RefCell::new((
            Box::new([0u32; 1 << huffman::MAX_CODE_LEN]),
            Vec::new(),
            huffman::Decoder { bits: 0, codes: Vec::new(), syms: Vec::new() },
        ));
}

/// The decoding loop a HUFF / RHUFF payload takes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kernel {
    /// HUFF: value tokens only
    Values,
    /// RHUFF where run tokens are common: every token writes 8 outputs without a branch on
    /// its kind (a mispredicted branch per short run would cost more)
    Runs,
    /// RHUFF where run tokens are rare (their codes, by their lengths, take under 1/8 of
    /// the tokens): a value token writes one output and a run takes a branch, which is
    /// rarely mispredicted (fewer stores per token than `Runs`)
    RareRuns,
}

/// Whether the codes of the run symbols (`dec.syms[i] >= values`) have a total probability
/// `sum 2^-length` under 1/8, which is the share of run tokens a Huffman code of these
/// lengths expects: then `Kernel::RareRuns` decodes faster than `Kernel::Runs`. Decides the
/// speed only, never the result (the kernels agree on every input).
fn rare_runs(dec: &huffman::Decoder, values: usize) -> bool {
    #[cfg(test)]
    if let Some(force) = FORCE_RARE_RUNS.with(|f| f.get()) {
        return force;
    }
    let share: u64 = dec
        .codes
        .iter()
        .zip(&dec.syms)
        .filter(|&(_, &s)| s as usize >= values)
        .map(|(&(_, l), _)| 1u64 << (huffman::MAX_CODE_LEN - (l as u32).min(huffman::MAX_CODE_LEN)))
        .sum();
    share < 1 << (huffman::MAX_CODE_LEN - 3)
}

#[cfg(test)]
thread_local! {
    /// Tests set this to choose `Kernel::RareRuns` (true) or `Kernel::Runs` (false) whatever
    /// the code lengths.
    static FORCE_RARE_RUNS: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

#[cfg(test)]
thread_local! {
    /// Kernels run by table size: 1 = full (MAX_CODE_LEN bits), 2 = smaller.
    static TABLES_SEEN: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
thread_local! {
    /// Paths of `tok2` taken: 1 = both tokens from one window, 2 = the second reloaded, 4 =
    /// a first token too long to pair.
    static PAIRS_SEEN: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
}

#[allow(clippy::too_many_arguments)]
fn huff_streams(
    r: &mut Reader<'_>,
    out: &mut [MaybeUninit<i64>],
    c: i64,
    table: &Table,
    tmask: usize,
    padded: &mut Vec<u8>,
    kernel: Kernel,
    acc: Option<i64>,
) -> Result<()> {
    let k = out.len();
    let ns = streams(k);
    let (ends, body) = stream_ends(r, ns, "huffman")?;
    // Short payloads are read from a copy followed by 8 zero bytes, so that no window read
    // takes the slow path at the end; long ones in place, where only their last few tokens do.
    let body = if body.len() < 1024 {
        padded.clear();
        padded.extend_from_slice(body);
        padded.extend_from_slice(&[0u8; 8]);
        &padded[..]
    } else {
        body
    };
    // bit offset of each stream's next code, all in one buffer
    let mut off = [0u64; 4];
    for j in 1..ns {
        off[j] = ends[j - 1] as u64 * 8;
    }
    #[cfg(test)]
    TABLES_SEEN.with(|t| t.set(t.get() | if tmask == FULL_MASK { 1 } else { 2 }));
    if tmask == FULL_MASK {
        // the common table of MAX_CODE_LEN bits: its mask is a constant (one register less)
        let d = Tables::<true> { body, table, tmask };
        d.dispatch(kernel, ns == 4, acc, &mut off, out, c)?;
    } else {
        let d = Tables::<false> { body, table, tmask };
        d.dispatch(kernel, ns == 4, acc, &mut off, out, c)?;
    }
    check_stream_ends(&off, &ends, ns, "huffman")
}

/// The byte lengths of the first `ns - 1` of `ns` streams (`ns` <= 4), read from `r`, which
/// is left empty: where each stream ends in the rest of the column (returned too), the last
/// at its end. An error when they add up to more than the rest.
pub(crate) fn stream_ends<'a>(
    r: &mut Reader<'a>,
    ns: usize,
    what: &str,
) -> Result<([usize; 4], &'a [u8])> {
    let mut ends = [0usize; 4];
    let mut total = 0usize;
    for e in ends.iter_mut().take(ns - 1) {
        // (a fixed label: one naming `what` would be formatted for every column)
        let l = r.varint("stream length")?;
        total = total.saturating_add(l.min(u32::MAX as u64) as usize);
        *e = total;
    }
    let body = r.rest();
    *r = Reader::new(&[]);
    if total > body.len() {
        return Err(Error::corrupt(format!(
            "{what} stream lengths exceed the column"
        )));
    }
    ends[ns - 1] = body.len();
    Ok((ends, body))
}

/// Each of the `ns` streams ending at `ends` (see `stream_ends`) was read up to bit offset
/// `off` (from the start of the first): it must end exactly in its last byte.
pub(crate) fn check_stream_ends(
    off: &[u64; 4],
    ends: &[usize; 4],
    ns: usize,
    what: &str,
) -> Result<()> {
    let mut start = 0usize;
    for j in 0..ns {
        let used = off[j] as usize - start * 8;
        if used > (ends[j] - start) * 8 || used.div_ceil(8) != ends[j] - start {
            return Err(Error::corrupt(format!(
                "{what} stream length disagrees with its codes"
            )));
        }
        start = ends[j];
    }
    Ok(())
}

/// The streams of a HUFF / RHUFF payload and their decoding table. The kernels write the
/// residuals `c + unzigzag(token)`, or with `DELTA` their running sums from `acc`.
struct Tables<'a, const FULL: bool> {
    body: &'a [u8],
    table: &'a Table,
    /// `FULL_MASK` when `FULL`
    tmask: usize,
}

const FULL_MASK: usize = (1 << huffman::MAX_CODE_LEN) - 1;

impl<const FULL: bool> Tables<'_, FULL> {
    /// Runs the kernel for the payload, compiled for BMI2 when the processor has it (the bit
    /// fiddling of every token takes fewer instructions: shifts by a register amount without
    /// the `cl` register, masks by `bzhi`), else for the baseline x86-64.
    fn dispatch(
        &self,
        kernel: Kernel,
        four: bool,
        acc: Option<i64>,
        off: &mut [u64; 4],
        out: &mut [MaybeUninit<i64>],
        c: i64,
    ) -> Result<()> {
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::allowed(crate::kernels::Tier::Avx2)
            && std::is_x86_feature_detected!("bmi1")
            && std::is_x86_feature_detected!("bmi2")
        {
            // SAFETY: the processor has both features (checked just above).
            return unsafe { self.kernels_bmi2(kernel, four, acc, off, out, c) };
        }
        self.kernels(kernel, four, acc, off, out, c)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "bmi1,bmi2")]
    fn kernels_bmi2(
        &self,
        kernel: Kernel,
        four: bool,
        acc: Option<i64>,
        off: &mut [u64; 4],
        out: &mut [MaybeUninit<i64>],
        c: i64,
    ) -> Result<()> {
        self.kernels(kernel, four, acc, off, out, c)
    }

    #[inline(always)]
    fn kernels(
        &self,
        kernel: Kernel,
        four: bool,
        acc: Option<i64>,
        off: &mut [u64; 4],
        out: &mut [MaybeUninit<i64>],
        c: i64,
    ) -> Result<()> {
        let runs = kernel != Kernel::Values;
        match (runs, four, acc) {
            (true, true, None) if kernel == Kernel::RareRuns => {
                self.runs::<4, false, true>(off, out, c, 0)?
            }
            (true, true, None) => self.runs::<4, false, false>(off, out, c, 0)?,
            // a zero centre as a constant: one register more for the loop (runs of a zero
            // centre are the case of the fast loop with running sums)
            (true, true, Some(a)) if c == 0 && kernel == Kernel::RareRuns => {
                self.runs::<4, true, true>(off, out, 0, a)?
            }
            (true, true, Some(a)) if c == 0 => self.runs::<4, true, false>(off, out, 0, a)?,
            (true, true, Some(a)) => self.runs::<4, true, false>(off, out, c, a)?,
            (true, false, None) => self.runs::<1, false, false>(off, out, c, 0)?,
            (true, false, Some(a)) => self.runs::<1, true, false>(off, out, c, a)?,
            (false, true, None) => self.values4::<false>(off, out, c, 0),
            (false, true, Some(a)) => self.values4::<true>(off, out, c, a),
            (false, false, None) => self.values1::<false>(&mut off[0], out, c, 0),
            (false, false, Some(a)) => self.values1::<true>(&mut off[0], out, c, a),
        }
        Ok(())
    }

    #[inline(always)]
    fn tok(&self, off: &mut u64) -> (u64, u32) {
        let tmask = if FULL { FULL_MASK } else { self.tmask };
        token(self.body, off, self.table, tmask)
    }

    /// HUFF, one stream.
    #[inline(always)]
    fn values1<const DELTA: bool>(
        &self,
        off: &mut u64,
        out: &mut [MaybeUninit<i64>],
        c: i64,
        mut acc: i64,
    ) {
        let mut o = *off;
        for x in out.iter_mut() {
            put::<DELTA>(x, &mut acc, c.wrapping_add(unzigzag(self.tok(&mut o).0)));
        }
        *off = o;
    }

    /// Two consecutive tokens of a stream, the second from the same window when both fit in
    /// its 57 bits (the usual case): its table lookup then waits for the first token's
    /// length only, not for another load.
    #[inline(always)]
    fn tok2(&self, off: &mut u64) -> (u64, u64) {
        let tmask = self.tmask & ((1 << huffman::MAX_CODE_LEN) - 1);
        let w = window(self.body, *off);
        let ta = self.table[(w as usize) & tmask];
        let la = ta & 0x7f;
        if la > 57 {
            #[cfg(test)]
            PAIRS_SEEN.with(|p| p.set(p.get() | 4));
            return (self.tok(off).0, self.tok(off).0);
        }
        let ea = (ta >> 8) & 63;
        let za = ((w >> (la - ea)) & ((1u64 << ea) - 1)) | (((ta >> 16) as u64) << ea);
        // bits past the window's 57 are zeros: a lookup that needed them finds a code whose
        // length does not fit the test below (codes are prefix-free)
        let w2 = w >> la;
        let tb = self.table[(w2 as usize) & tmask];
        let lb = tb & 0x7f;
        #[cfg(test)]
        PAIRS_SEEN.with(|p| p.set(p.get() | if la + lb <= 57 { 1 } else { 2 }));
        if la + lb <= 57 {
            let eb = (tb >> 8) & 63;
            let zb = ((w2 >> (lb - eb)) & ((1u64 << eb) - 1)) | (((tb >> 16) as u64) << eb);
            *off += (la + lb) as u64;
            (za, zb)
        } else {
            *off += la as u64;
            (za, self.tok(off).0)
        }
    }

    /// HUFF, four streams (value `i` in stream `i % 4`): eight values at a time, two of each
    /// stream.
    #[inline(always)]
    fn values4<const DELTA: bool>(
        &self,
        off: &mut [u64; 4],
        out: &mut [MaybeUninit<i64>],
        c: i64,
        mut acc: i64,
    ) {
        let [mut o0, mut o1, mut o2, mut o3] = *off;
        let mut chunks = out.chunks_exact_mut(8);
        for q in &mut chunks {
            let (a0, b0) = self.tok2(&mut o0);
            let (a1, b1) = self.tok2(&mut o1);
            let (a2, b2) = self.tok2(&mut o2);
            let (a3, b3) = self.tok2(&mut o3);
            let v = [a0, a1, a2, a3, b0, b1, b2, b3].map(|z| c.wrapping_add(unzigzag(z)));
            if DELTA {
                for (x, &d) in q.iter_mut().zip(&v) {
                    acc = acc.wrapping_add(d);
                    x.write(acc);
                }
            } else {
                q.copy_from_slice(&v.map(MaybeUninit::new));
            }
        }
        *off = [o0, o1, o2, o3];
        for (i, x) in chunks.into_remainder().iter_mut().enumerate() {
            put::<DELTA>(
                x,
                &mut acc,
                c.wrapping_add(unzigzag(self.tok(&mut off[i % 4]).0)),
            );
        }
    }

    /// RHUFF over `NS` streams (token `t` in stream `t % NS`): value tokens and runs of `c`;
    /// with `RARE` (`Kernel::RareRuns`) a branch on the token kind in the fast loop.
    #[inline(always)]
    fn runs<const NS: usize, const DELTA: bool, const RARE: bool>(
        &self,
        off: &mut [u64; 4],
        out: &mut [MaybeUninit<i64>],
        c: i64,
        mut acc: i64,
    ) -> Result<()> {
        let k = out.len();
        let mut pos = 0usize;
        let mut o = *off;
        // next stream
        let mut s = 0usize;
        // While 8 outputs are left, each token writes the same word to 8 of them, without a
        // branch on its kind: the value (a run: the centre, or with DELTA the running sum,
        // which a run of a zero centre repeats); only runs longer than 8 take a branch. The
        // words past a value token are overwritten by the next tokens. With `RARE`, a value
        // token writes its one output and a run branches off, to the end of the column (the
        // loop below has nothing left).
        if !DELTA || c == 0 {
            let [mut o0, mut o1, mut o2, mut o3] = o;
            // one token of stream `$j` (offset `$o`), or out of the loop when fewer than 8
            // outputs are left (`RARE`: none)
            macro_rules! step {
                ($o:ident, $j:expr) => {
                    if $j < NS && RARE {
                        // to the end of the column: a value token needs one output left
                        if pos >= k {
                            s = $j;
                            break;
                        }
                        let (z, t) = self.tok(&mut $o);
                        if t & E_RUN != 0 {
                            let left = k - pos;
                            if z > left as u64 {
                                return Err(Error::corrupt(
                                    "run of the centre runs past the column",
                                ));
                            }
                            // a run of a zero centre repeats the running sum
                            let w = if DELTA { acc } else { c };
                            if z <= 8 && left >= 8 {
                                out[pos..pos + 8].fill(MaybeUninit::new(w));
                            } else {
                                out[pos..pos + z as usize].fill(MaybeUninit::new(w));
                            }
                            pos += z as usize;
                        } else {
                            let v = c.wrapping_add(unzigzag(z));
                            let w = if DELTA { acc.wrapping_add(v) } else { v };
                            out[pos].write(w);
                            acc = w;
                            pos += 1;
                        }
                    } else if $j < NS {
                        let Some(dst) = out.get_mut(pos..pos + 8) else {
                            s = $j;
                            break;
                        };
                        let (z, t) = self.tok(&mut $o);
                        let run = t & E_RUN != 0;
                        let v = if run { c } else { c.wrapping_add(unzigzag(z)) };
                        let len = if run { z } else { 1 };
                        let w = if DELTA { acc.wrapping_add(v) } else { v };
                        dst.fill(MaybeUninit::new(w));
                        if len > 8 {
                            if len > (k - pos) as u64 {
                                return Err(Error::corrupt(
                                    "run of the centre runs past the column",
                                ));
                            }
                            out[pos + 8..pos + len as usize].fill(MaybeUninit::new(w));
                        }
                        acc = w;
                        pos += len as usize;
                    }
                };
            }
            loop {
                step!(o0, 0);
                step!(o1, 1);
                step!(o2, 2);
                step!(o3, 3);
            }
            o = [o0, o1, o2, o3];
        }
        while pos < k {
            let (z, t) = self.tok(&mut o[s]);
            s = if s + 1 == NS { 0 } else { s + 1 };
            if t & E_RUN != 0 {
                if z > (k - pos) as u64 {
                    return Err(Error::corrupt("run of the centre runs past the column"));
                }
                let run = &mut out[pos..pos + z as usize];
                if DELTA {
                    if c == 0 {
                        run.fill(MaybeUninit::new(acc));
                    } else {
                        for x in run.iter_mut() {
                            acc = acc.wrapping_add(c);
                            x.write(acc);
                        }
                    }
                } else {
                    run.fill(MaybeUninit::new(c));
                }
                pos += z as usize;
            } else {
                put::<DELTA>(&mut out[pos], &mut acc, c.wrapping_add(unzigzag(z)));
                pos += 1;
            }
        }
        *off = o;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Tier;

    /// `decode_residuals` of `k` values into slots first set to `fill` (a slot the decoder
    /// does not write keeps it: the tests try two fills).
    fn residuals(
        method: u8,
        rd: &mut Reader<'_>,
        k: usize,
        acc: Option<i64>,
        fill: i64,
    ) -> Result<Vec<i64>> {
        let mut out = vec![MaybeUninit::new(fill); k];
        decode_residuals(method, rd, &mut out, acc)?;
        // SAFETY: every slot was initialised (to `fill`) before the call, and the decoder
        // only writes initialised values.
        Ok(out
            .into_iter()
            .map(|x| unsafe { x.assume_init() })
            .collect())
    }

    /// `encode_ints_within` gives up only on columns of at least `budget` bytes, and
    /// otherwise writes exactly what `encode_ints` writes.
    #[test]
    fn budget_only_drops_columns_that_cannot_fit() {
        let mut rnd = crate::testutil::xorshift(0x2545f4914f6cdd1du64);
        for round in 0..4000 {
            let n = 1 + (rnd() % if round % 4 == 0 { 6000 } else { 1100 }) as usize;
            let spread = 1 + rnd() % (1 << (rnd() % 40));
            let repeat = rnd() % 4;
            let mut v = Vec::with_capacity(n);
            let mut cur = (rnd() % 1_000_000) as i64;
            for _ in 0..n {
                if rnd() % 4 >= repeat {
                    cur = cur.wrapping_add((rnd() % spread) as i64 - (spread / 2) as i64);
                }
                v.push(cur);
            }
            let mut full = vec![0xaa];
            encode_ints(&v, &mut full);
            let size = full.len() - 1;
            for budget in [
                0,
                1,
                size / 2,
                size.saturating_sub(1),
                size,
                size + 1,
                1 << 30,
            ] {
                let mut out = vec![0xaa];
                if encode_ints_within(&v, &mut out, budget) {
                    assert_eq!(out, full, "round {round} budget {budget}");
                } else {
                    assert_eq!(out, [0xaa], "round {round}");
                    assert!(size >= budget, "round {round}: {size} < {budget}");
                }
            }
        }
    }

    /// The quick bound by extra bits (wide residuals, small budgets) gives up only on columns
    /// that cannot fit: sparse columns of wide residuals sit within a few bits a value of it.
    #[test]
    fn extra_bits_bound_only_drops_columns_that_cannot_fit() {
        let mut rnd = crate::testutil::xorshift(0x5eed_b0ca_9e00_0001);
        let mut dropped = 0;
        for round in 0..600 {
            let k = 256 + (rnd() % 4000) as usize;
            // ~1 in 6 residuals far from the zero centre, of 14 to 40 bits
            let bits = 14 + rnd() % 27;
            let r: Vec<i64> = (0..k)
                .map(|_| {
                    if rnd().is_multiple_of(6) {
                        ((1u64 << (bits - 1)) | (rnd() % (1 << (bits - 1)))) as i64
                    } else {
                        0
                    }
                })
                .collect();
            let centred = centre_and_precision(&r);
            if centred.1 > WIDE_M {
                continue;
            }
            let mut full = Vec::new();
            let method = encode_residuals(&r, &mut full, usize::MAX);
            assert_ne!(method, R_ABORT);
            let size = full.len();
            for budget in [size / 2, size.saturating_sub(1), size, size + 1, size * 2] {
                let mut out = Vec::new();
                let m = encode_residuals(&r, &mut out, budget);
                if m == R_ABORT {
                    assert!(
                        out.is_empty() && size >= budget,
                        "round {round}: {size} < {budget}"
                    );
                    dropped += (budget * 2 < k) as usize;
                } else {
                    assert_eq!(out, full, "round {round} budget {budget}");
                }
            }
        }
        assert!(dropped > 100, "the bound gave up on {dropped} columns only");
    }

    /// The size bounds used to choose between HUFF and RHUFF hold for the bytes written, and
    /// the residual coder keeps the smaller of the two written codings (HUFF on a tie).
    #[test]
    fn planned_sizes_bound_written_sizes() {
        let mut rnd = crate::testutil::xorshift(0x9e3779b97f4a7c15u64);
        let mut rhuff_planned = 0;
        for round in 0..1500 {
            let k = 1024 + (rnd() % 20000) as usize;
            let spread = 2 + rnd() % (1 << (rnd() % 30));
            // long runs of the centre (0) between noisy stretches
            let on_run = 2 + rnd() % 64;
            let mut r = Vec::with_capacity(k);
            while r.len() < k {
                let len = (rnd() % on_run) as usize;
                r.extend(std::iter::repeat_n(0i64, len.min(k - r.len())));
                if r.len() < k {
                    r.push((rnd() % spread) as i64 - (spread / 2) as i64);
                }
            }
            let st = stats(&r);
            if st.lo == st.hi {
                continue;
            }
            let Some(Basic::Huff(h)) = plan_basic(&r, &st, usize::MAX, usize::MAX) else {
                continue;
            };
            let mut hw = Vec::new();
            write_huff(&r, &mut hw, st.c, &h);
            assert!(
                h.size.lo <= hw.len() && hw.len() <= h.size.hi,
                "round {round} HUFF"
            );
            let on = k - st.exceptions;
            if on * 3 < k || on < 4 * st.run_starts {
                continue;
            }
            rhuff_planned += 1;
            let p = plan_rhuff(&r, &st);
            let mut rw = Vec::new();
            write_rhuff(&r, &mut rw, st.c, &p);
            assert!(
                p.size.lo <= rw.len() && rw.len() <= p.size.hi,
                "round {round} RHUFF"
            );
            let mut out = Vec::new();
            let method = encode_residuals(&r, &mut out, usize::MAX);
            if rw.len() < hw.len() {
                assert_eq!((method, &out), (R_RHUFF, &rw), "round {round}");
            } else {
                assert_ne!(method, R_RHUFF, "round {round}");
                assert!(out.len() <= hw.len(), "round {round}");
            }
        }
        assert!(
            rhuff_planned > 300,
            "only {rhuff_planned} columns tried RHUFF"
        );
    }

    /// Residual payloads of every method (HUFF and RHUFF over one stream and four, centres
    /// zero and not), decoded plainly and with a running sum (the kernels that undo a
    /// difference on the way), against the residuals; cut payloads fail without a panic.
    #[test]
    fn residual_kernels_match_reference() {
        let mut rnd = crate::testutil::xorshift(0x243f6a8885a308d3u64);
        let mut seen = std::collections::HashSet::new();
        for round in 0..1500 {
            let k = 1 + (rnd() % [40, 200, 1500, 5000][round % 4]) as usize;
            let c = [0i64, 0, 5, -3, 1 << 40][(rnd() % 5) as usize];
            let stick = rnd() % 4;
            let spread = 1 + rnd() % (1 << (rnd() % 30));
            let mut r = Vec::with_capacity(k);
            while r.len() < k {
                if rnd() % 4 < stick {
                    let run = 1 + (rnd() % [3, 12, 60, 400][(rnd() % 4) as usize]) as usize;
                    r.extend(std::iter::repeat_n(c, run.min(k - r.len())));
                } else {
                    r.push(c.wrapping_add((rnd() % spread) as i64 - (spread / 2) as i64));
                }
            }
            if round % 50 == 0 {
                r[k / 2] = i64::MIN;
            }
            let mut payload = Vec::new();
            let method = encode_residuals(&r, &mut payload, usize::MAX);
            seen.insert((method, streams(k), c != 0));
            let a0 = rnd() as i64;
            let mut sums = Vec::with_capacity(k);
            let mut a = a0;
            for &v in &r {
                a = a.wrapping_add(v);
                sums.push(a);
            }
            // both kernel builds (BMI2, where the processor has it, and baseline), RHUFF by
            // both kernels whatever its code lengths
            for (portable, rare) in [false, true]
                .into_iter()
                .flat_map(|p| [None, Some(false), Some(true)].map(|r| (p, r)))
            {
                crate::kernels::set_cap(if portable {
                    Tier::Portable
                } else {
                    Tier::Avx512
                });
                FORCE_RARE_RUNS.with(|f| f.set(rare));
                for (acc, want) in [(None, &r), (Some(a0), &sums)] {
                    // two fills of the slots: one the decoder did not write would show
                    for fill in [0, -1] {
                        let mut rd = Reader::new(&payload);
                        let out = residuals(method, &mut rd, k, acc, fill).unwrap();
                        assert!(rd.is_empty(), "round {round}");
                        assert_eq!(
                            &out, want,
                            "round {round} method {method} acc {acc:?} rare {rare:?}"
                        );
                    }
                }
            }
            FORCE_RARE_RUNS.with(|f| f.set(None));
            for cut in [0, 1, payload.len() / 2, payload.len().saturating_sub(1)] {
                let _ = residuals(method, &mut Reader::new(&payload[..cut]), k, None, 0);
            }
            // garbage in the streams (the table stays valid): runs past the end, overreads
            for _ in 0..4 {
                let mut bad = payload.clone();
                let from = bad.len() / 3;
                for b in bad[from..].iter_mut() {
                    if rnd().is_multiple_of(3) {
                        *b = rnd() as u8;
                    }
                }
                let mut got = Vec::new();
                for portable in [false, true] {
                    crate::kernels::set_cap(if portable {
                        Tier::Portable
                    } else {
                        Tier::Avx512
                    });
                    for rare in [Some(false), Some(true)] {
                        FORCE_RARE_RUNS.with(|f| f.set(rare));
                        for acc in [Some(1), None] {
                            let res = residuals(method, &mut Reader::new(&bad), k, acc, 0);
                            got.push(res.map_err(|e| e.to_string()));
                        }
                    }
                }
                FORCE_RARE_RUNS.with(|f| f.set(None));
                // the same results (the plain ones, acc None, at the odd indices)
                for (i, g) in got.iter().enumerate() {
                    assert_eq!(g, &got[i % 2], "round {round} kernel {i}");
                }
            }
            crate::kernels::set_cap(Tier::Avx512);
        }
        assert_eq!(PAIRS_SEEN.with(|p| p.get()), 7, "every path of tok2");
        assert_eq!(TABLES_SEEN.with(|t| t.get()), 3, "full and smaller tables");
        for want in [
            (R_HUFF, 1, false),
            (R_HUFF, 4, false),
            (R_HUFF, 4, true),
            (R_RHUFF, 4, false),
            (R_RHUFF, 4, true),
        ] {
            assert!(seen.contains(&want), "{want:?} never tried");
        }
    }

    /// Random bytes behind every PIPE / RPIPE tag: an error or a result, never a panic (the
    /// decoding kernels read past stream ends and through runs that may overrun the column).
    #[test]
    fn hostile_pipes_do_not_panic() {
        let mut rnd = crate::testutil::xorshift(0x13198a2e03707344u64);
        for round in 0..20000 {
            let tag = [0x12u8, 0x16, 0x1a, 0x20, 0x21, 0x22][round % 6];
            let len = (rnd() % 300) as usize;
            let mut b = vec![tag];
            // a plausible head: small varints, a precision byte, a symbol count
            b.extend([(rnd() % 4) as u8, (rnd() % 4) as u8, (rnd() % 8) as u8]);
            b.extend((0..len).map(|_| rnd() as u8));
            let n = (rnd() % 2000) as usize;
            let _ = decode_ints(&b, n);
        }
    }

    fn rt(v: &[i64]) -> usize {
        let mut b = Vec::new();
        encode_ints(v, &mut b);
        assert_eq!(decode_ints(&b, v.len()).unwrap(), v, "tag {:02x}", b[0]);
        for cut in 0..b.len() {
            let _ = decode_ints(&b[..cut], v.len());
        }
        b.len()
    }

    #[test]
    fn median_matches_sorting() {
        let mut rnd = crate::testutil::xorshift(0x2545f4914f6cdd1du64);
        for round in 0..20000 {
            let n = 1 + (rnd() % 64) as usize;
            let spread = rnd() % 600;
            let base = [rnd() as i64, i64::MIN, i64::MAX - 300, -100][round % 4];
            let mut v: Vec<i64> = (0..n)
                .map(|_| match rnd() % 16 {
                    0 => rnd() as i64,
                    1 => i64::MIN,
                    2 => i64::MAX,
                    _ => base.wrapping_add((rnd() % (spread + 1)) as i64),
                })
                .collect();
            let mut sorted = v.clone();
            sorted.sort_unstable();
            assert_eq!(median_of(&mut v), sorted[n / 2], "round {round}");
        }
    }

    #[test]
    fn levels_match_direct_binning() {
        let mut rnd = crate::testutil::xorshift(0x9e3779b97f4a7c15);
        for round in 0..500 {
            let top_m = (round % (MAX_M as usize + 1)) as u32;
            let mut zs: Vec<u64> = (0..1 + round % 300)
                .map(|_| {
                    let x = rnd();
                    x >> (x % 64)
                })
                .collect();
            zs.sort_unstable();
            let bins = |m: u32| {
                let mut v: Vec<(u32, u32)> = Vec::new();
                for &z in &zs {
                    let b = bin_of(z, m).0;
                    match v.last_mut() {
                        Some(l) if l.0 == b => l.1 += 1,
                        _ => v.push((b, 1)),
                    }
                }
                v
            };
            let mut flat = bins(top_m);
            let (span, extras) = push_levels(&mut flat, top_m);
            for m in 0..=top_m {
                let (a, b) = span[m as usize];
                assert_eq!(flat[a..b], bins(m)[..], "round {round} m {m}");
                let e: u64 = zs.iter().map(|&z| bin_of(z, m).1 as u64).sum();
                assert_eq!(extras[m as usize], e, "round {round} m {m}");
            }
        }
    }

    #[test]
    fn coarser_bins_nest() {
        for m in 0..MAX_M {
            for s in 0..alphabet(m + 1) as u32 {
                assert_eq!(
                    coarser_bin(s, m),
                    bin_of(bin_base(s, m + 1).0, m).0,
                    "{m} {s}"
                );
            }
        }
    }

    #[test]
    fn bins_roundtrip() {
        for m in 0..=MAX_M {
            for z in [
                0u64,
                1,
                2,
                3,
                7,
                8,
                100,
                1 << 20,
                u64::MAX,
                u64::MAX - 5,
                12345678901234,
            ] {
                let (s, e) = bin_of(z, m);
                assert!((s as usize) < alphabet(m));
                let (base, e2) = bin_base(s, m);
                assert_eq!(e, e2);
                assert_eq!(base | (z & if e == 0 { 0 } else { (1u64 << e) - 1 }), z);
            }
        }
    }

    #[test]
    fn roundtrips() {
        rt(&[]);
        rt(&[1]);
        rt(&[1, 2]);
        rt(&[i64::MIN, i64::MAX, 0, i64::MIN]);
        let regular: Vec<i64> = (0..1000).map(|i| 1_545_148_800_000 + i * 300_000).collect();
        assert!(rt(&regular) < 20);
        let mut gaps = regular.clone();
        gaps.drain(100..110);
        gaps.drain(500..501);
        assert!(rt(&gaps) < 40);
        let mut x: u64 = 7;
        let noisy: Vec<i64> = (0..5000)
            .map(|i| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                1_600_000_000_000 + i * 500 + ((x >> 40) % 60) as i64
            })
            .collect();
        rt(&noisy);
        let wild: Vec<i64> = (0..3000)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                x as i64
            })
            .collect();
        rt(&wild);
        // a counter that stands still between steps: RHUFF (tag 0x20 | d)
        let mut sticky = Vec::new();
        let mut v = 5_000i64;
        for i in 0..3000 {
            if i % 37 == 0 || i % 101 == 3 {
                v += (i % 5) as i64 + 1;
            }
            sticky.push(v);
        }
        let mut b = Vec::new();
        encode_ints(&sticky, &mut b);
        assert_eq!(b[0] & 0xf0, I_RPIPE, "tag {:02x}", b[0]);
        rt(&sticky);
        for n in 1..70 {
            let v: Vec<i64> = (0..n).map(|i| (i * i) as i64 - 30).collect();
            rt(&v);
        }
    }

    #[test]
    fn wide_residuals_take_coarse_precisions() {
        // an inverter at night then by day: runs of zero among readings of 20 bits or more
        let mut next = crate::testutil::xorshift(5);
        let day_night: Vec<i64> = (0..4096)
            .map(|i| {
                let r = next();
                if (i / 300) % 5 < 2 {
                    0
                } else {
                    (r % 20_000_000) as i64 + 100_000
                }
            })
            .collect();
        let st = stats(&day_night);
        assert_eq!(
            (st.c, st.top_m),
            (0, WIDE_M),
            "wide around the frequent zero"
        );
        // longer nights: most residuals on the centre, still wide off it
        let long_nights: Vec<i64> = (0..4096)
            .map(|i| if (i / 300) % 5 < 3 { 0 } else { day_night[i] })
            .collect();
        let st = stats(&long_nights);
        assert_eq!((st.c, st.top_m), (0, WIDE_M));
        rt(&long_nights);
        let mut b = Vec::new();
        encode_ints(&day_night, &mut b);
        // RHUFF (runs of the centre); the first values are zeros, so its `d` heads, then the
        // centre 0, take a byte each before the precision. RHUFF's value bins are those HUFF
        // counted, at precision WIDE_M at most.
        assert_eq!(b[0] & 0xf0, I_RPIPE, "tag {:02x}", b[0]);
        let d = usize::from(b[0] & 3);
        assert!(b[1..d + 2].iter().all(|&x| x == 0), "heads and centre");
        let m = b[d + 2];
        assert!(u32::from(m) <= WIDE_M, "precision {m}");
        rt(&day_night);
        // narrow residuals keep every precision
        let narrow: Vec<i64> = (0..4096).map(|_| (next() % 300) as i64).collect();
        assert_eq!(stats(&narrow).top_m, MAX_M);
        rt(&narrow);
    }
}
