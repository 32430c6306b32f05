//! Length-limited canonical Huffman codes over small alphabets, written LSB-first.
#[cfg(test)]
use crate::bits::{BitReader, BitWriter};
use crate::bytes::{put_varint, Reader};
use crate::error::{Error, Result};

pub const MAX_CODE_LEN: u32 = 12;

/// Code lengths (0 = unused) for `counts`, none longer than `MAX_CODE_LEN`. A single used
/// symbol gets length 0 (it costs no bits at all).
pub fn code_lengths(counts: &[u32]) -> Vec<u8> {
    code_lengths_limited(counts.iter().copied(), MAX_CODE_LEN)
}

/// Like `code_lengths`, none longer than `max_len` (raised if needed to fit the symbols).
/// While the plain Huffman code is too deep, the counts are halved (keeping them >= 1) and
/// the code rebuilt. Works in a per-thread scratch space: encoders call this for every
/// column, and short columns should not pay for a handful of allocations each time. The
/// counts come as an iterator so that callers need not gather them into a slice first.
pub fn code_lengths_limited(counts: impl ExactSizeIterator<Item = u32>, max_len: u32) -> Vec<u8> {
    let mut lens = vec![0u8; counts.len()];
    SCRATCH.with(|cell| {
        let mut guard = cell.borrow_mut();
        let sc = &mut *guard;
        sc.used.clear();
        sc.scaled.clear();
        for (i, c) in counts.enumerate() {
            if c > 0 {
                sc.used.push(i as u32);
                sc.scaled.push(c as u64);
            }
        }
        let nused = sc.used.len();
        if nused <= 1 {
            return lens;
        }
        let need = 64 - (nused as u64 - 1).leading_zeros();
        let max_len = max_len.max(need).min(MAX_CODE_LEN);
        loop {
            huffman_depths(sc);
            if sc.leaf_depth.iter().all(|&x| x as u32 <= max_len) {
                for (k, &d) in sc.leaf_depth.iter().enumerate() {
                    lens[sc.used[k] as usize] = d;
                }
                return lens;
            }
            for c in sc.scaled.iter_mut() {
                *c = (*c >> 1).max(1);
            }
        }
    })
}

/// Working space of `code_lengths_limited`. The node arrays keep their length between calls
/// (resizing only fills the new entries): every entry read is written first.
#[derive(Default)]
struct Scratch {
    /// used symbols, increasing
    used: Vec<u32>,
    /// their (scaled) weights
    scaled: Vec<u64>,
    /// (weight << 32 | position) of the leaves, sorted
    keys: Vec<u64>,
    weight: Vec<u64>,
    parent: Vec<u32>,
    depth: Vec<u8>,
    /// code length of each used symbol (same order as `used`)
    leaf_depth: Vec<u8>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Plain Huffman code lengths of the positive weights `sc.scaled` (two of them at least) into
/// `sc.leaf_depth` (two-queue method on the weights sorted stably, i.e. by (weight,
/// position)).
fn huffman_depths(sc: &mut Scratch) {
    let n = sc.scaled.len();
    let nodes = 2 * n - 1;
    // sort by (weight, position) as one u64 key: weights come from u32 counts (halving only
    // lowers them), positions are below 2^32
    sc.keys.clear();
    sc.keys.extend(
        sc.scaled
            .iter()
            .enumerate()
            .map(|(i, &x)| (x << 32) | i as u64),
    );
    sc.keys.sort_unstable();
    // nodes: leaves 0..n (sorted), internal n..nodes
    sc.weight.resize(nodes, 0);
    sc.parent.resize(nodes, 0);
    sc.depth.resize(nodes, 0);
    sc.leaf_depth.resize(n, 0);
    let weight = &mut sc.weight[..nodes];
    let parent = &mut sc.parent[..nodes];
    for (w, &k) in weight.iter_mut().zip(&sc.keys) {
        *w = k >> 32;
    }
    let (mut leaf, mut inner, mut next) = (0usize, n, n);
    while next < nodes {
        let mut pick = || {
            if leaf < n && (inner >= next || weight[leaf] <= weight[inner]) {
                leaf += 1;
                leaf - 1
            } else {
                inner += 1;
                inner - 1
            }
        };
        let a = pick();
        let b = pick();
        weight[next] = weight[a] + weight[b];
        parent[a] = next as u32;
        parent[b] = next as u32;
        next += 1;
    }
    let depth = &mut sc.depth[..nodes];
    depth[nodes - 1] = 0;
    for i in (0..nodes - 1).rev() {
        depth[i] = depth[parent[i] as usize].saturating_add(1);
    }
    for (&k, &d) in sc.keys.iter().zip(depth.iter()) {
        sc.leaf_depth[k as u32 as usize] = d;
    }
}

/// Like `code_lengths`, none longer than `max_len` (raised if needed to fit the symbols).
#[cfg(test)]
fn code_lengths_limited_reference(counts: &[u32], max_len: u32) -> Vec<u8> {
    let mut lens = vec![0u8; counts.len()];
    let used: Vec<usize> = (0..counts.len()).filter(|&i| counts[i] > 0).collect();
    if used.len() <= 1 {
        return lens;
    }
    let need = 64 - (used.len() as u64 - 1).leading_zeros();
    let max_len = max_len.max(need).min(MAX_CODE_LEN);
    let mut scaled: Vec<u64> = used.iter().map(|&i| counts[i] as u64).collect();
    loop {
        let l = huffman_lengths(&scaled);
        if l.iter().all(|&x| x as u32 <= max_len) {
            for (k, &i) in used.iter().enumerate() {
                lens[i] = l[k];
            }
            return lens;
        }
        for c in scaled.iter_mut() {
            *c = (*c >> 1).max(1);
        }
    }
}

/// Plain Huffman code lengths of positive weights (two-queue method on sorted weights).
#[cfg(test)]
fn huffman_lengths(w: &[u64]) -> Vec<u8> {
    let n = w.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| w[i]);
    // nodes: leaves 0..n (sorted), internal n..2n-1
    let mut weight: Vec<u64> = order.iter().map(|&i| w[i]).collect();
    let mut parent = vec![0usize; 2 * n - 1];
    weight.resize(2 * n - 1, 0);
    let (mut leaf, mut inner, mut next) = (0usize, n, n);
    let pick = |leaf: &mut usize, inner: &mut usize, next: usize, weight: &Vec<u64>| -> usize {
        if *leaf < n && (*inner >= next || weight[*leaf] <= weight[*inner]) {
            *leaf += 1;
            *leaf - 1
        } else {
            *inner += 1;
            *inner - 1
        }
    };
    while next < 2 * n - 1 {
        let a = pick(&mut leaf, &mut inner, next, &weight);
        let b = pick(&mut leaf, &mut inner, next, &weight);
        weight[next] = weight[a] + weight[b];
        parent[a] = next;
        parent[b] = next;
        next += 1;
    }
    let mut depth = vec![0u8; 2 * n - 1];
    for i in (0..2 * n - 2).rev() {
        depth[i] = depth[parent[i]].saturating_add(1);
    }
    let mut out = vec![0u8; n];
    for (k, &i) in order.iter().enumerate() {
        out[i] = depth[k];
    }
    out
}

/// Canonical codes, bit-reversed for an LSB-first stream. Returns (code, length) per symbol.
pub fn canonical_codes(lens: &[u8]) -> Vec<(u32, u8)> {
    let mut codes = Vec::with_capacity(lens.len());
    for_each_code(lens, |_, code| codes.push(code));
    codes
}

/// The first canonical code of each length, from the number of codes of each length
/// (`count[0] == 0`): DEFLATE's construction (RFC 1951 3.2.2), the same codes as sorting by
/// (length, symbol). Each symbol takes the next code of its length, in symbol order.
fn first_codes(count: &[u32]) -> [u32; 33] {
    let mut next = [0u32; 33];
    let mut code = 0u32;
    for bits in 1..count.len() {
        code = (code + count[bits - 1]) << 1;
        next[bits] = code;
    }
    next
}

/// Calls `f(i, (code, length))` for every symbol `i` in order, with the codes of
/// `canonical_codes` (encoders put them straight into their lookup tables).
#[inline]
pub fn for_each_code(lens: &[u8], mut f: impl FnMut(usize, (u32, u8))) {
    let mut count = [0u32; 33];
    for &l in lens {
        count[l as usize] += 1;
    }
    count[0] = 0;
    let mut next = first_codes(&count);
    for (i, &l) in lens.iter().enumerate() {
        if l == 0 {
            f(i, (0, 0));
        } else {
            let c = next[l as usize];
            next[l as usize] += 1;
            f(i, (c.reverse_bits() >> (32 - l as u32), l));
        }
    }
}

/// Cost in bits of coding `counts` with `lens` (not counting the table).
pub fn coded_bits(counts: impl Iterator<Item = u32>, lens: &[u8]) -> u64 {
    counts.zip(lens).map(|(c, &l)| c as u64 * l as u64).sum()
}

/// Table: varint(2 * #used symbols + layout), then the used symbols in increasing order:
/// layout 0 lists them as varint gaps (the first symbol itself, then each symbol minus the
/// previous one minus 1); layout 1 (dense tables) as varint(first symbol), varint(span =
/// last - first + 1) and a bitmap of `span` bits (LSB-first, bit `i` = symbol `first + i`).
/// Then the code lengths, two 4-bit lengths a byte (low nibble first). A table of one symbol
/// has no lengths: that symbol takes 0 bits.
pub fn write_table(
    syms: impl ExactSizeIterator<Item = u32> + Clone,
    lens: &[u8],
    out: &mut Vec<u8>,
) {
    let used = syms.len();
    // the gap listing's size, to compare with the bitmap's before writing either
    let mut gaps_len = 0usize;
    let mut prev: i64 = -1;
    let (mut first, mut last) = (0u32, 0u32);
    for s in syms.clone() {
        if prev < 0 {
            first = s;
        }
        last = s;
        gaps_len += crate::bytes::varint_len((s as i64 - prev - 1) as u64);
        prev = s as i64;
    }
    let span = (last - first) as u64 + 1;
    let first = first as u64;
    let bitmap_len = crate::bytes::varint_len(first)
        + crate::bytes::varint_len(span)
        + span.div_ceil(8) as usize;
    if used > 1 && bitmap_len < gaps_len {
        put_varint(out, 2 * used as u64 + 1);
        put_varint(out, first);
        put_varint(out, span);
        let start = out.len();
        out.resize(start + span.div_ceil(8) as usize, 0);
        for s in syms {
            let i = (s as u64 - first) as usize;
            out[start + i / 8] |= 1 << (i % 8);
        }
    } else {
        put_varint(out, 2 * used as u64);
        let mut prev: i64 = -1;
        for s in syms {
            put_varint(out, (s as i64 - prev - 1) as u64);
            prev = s as i64;
        }
    }
    if used > 1 {
        for pair in lens.chunks(2) {
            let lo = pair[0];
            let hi = if pair.len() > 1 { pair[1] } else { 0 };
            out.push(lo | (hi << 4));
        }
    }
}

/// A table read by `read_table`: the used symbols and their canonical codes (bit-reversed, so
/// that the low bits of an LSB-first window select them). `fill` lays out a lookup table.
pub struct Decoder {
    pub bits: u32,
    pub codes: Vec<(u32, u8)>,
    pub syms: Vec<u32>,
}

impl Decoder {
    /// Writes `entry(i) | length` at every index of `table[..2^bits]` whose low bits are the
    /// code of symbol `i`.
    pub fn fill(&self, table: &mut [u32], entry: impl Fn(usize) -> u32) {
        let size = 1usize << self.bits;
        for (i, &(code, l)) in self.codes.iter().enumerate() {
            let e = entry(i) | l as u32;
            let step = 1usize << l;
            let mut j = code as usize;
            while j < size {
                table[j] = e;
                j += step;
            }
        }
    }
}

pub const HOLE: u32 = u32::MAX;

/// Reads a table written by `write_table` for an alphabet of `alphabet` symbols.
pub fn read_table(r: &mut Reader<'_>, alphabet: usize) -> Result<Decoder> {
    let mut dec = Decoder {
        bits: 0,
        codes: Vec::new(),
        syms: Vec::new(),
    };
    read_table_into(r, alphabet, &mut dec)?;
    Ok(dec)
}

/// `read_table` into the buffers of `dec` (decoders keep one between columns).
pub fn read_table_into(r: &mut Reader<'_>, alphabet: usize, dec: &mut Decoder) -> Result<()> {
    let head = r.varint("huffman symbol count")?;
    let (used, layout) = (head / 2, head % 2);
    if used == 0 || used > alphabet as u64 || used > r.remaining() as u64 * 8 {
        return Err(Error::corrupt("huffman table symbol count out of range"));
    }
    let used = used as usize;
    let syms = &mut dec.syms;
    syms.clear();
    syms.reserve(used);
    if layout == 0 {
        let mut prev: i64 = -1;
        for _ in 0..used {
            let gap = r.varint("huffman symbol gap")?;
            let s = prev as i128 + gap as i128 + 1;
            if s >= alphabet as i128 {
                return Err(Error::corrupt("huffman symbol out of range"));
            }
            syms.push(s as u32);
            prev = s as i64;
        }
    } else {
        let first = r.varint("huffman first symbol")?;
        let span = r.varint("huffman symbol span")?;
        if used < 2 || span < used as u64 || first.saturating_add(span) > alphabet as u64 {
            return Err(Error::corrupt("huffman symbol span out of range"));
        }
        let bitmap = r.take(span.div_ceil(8) as usize, "huffman symbol bitmap")?;
        // set bits byte by byte (bits past the span fail the checks below)
        for (i, &byte) in bitmap.iter().enumerate() {
            let mut b = byte;
            while b != 0 {
                syms.push((first as usize + 8 * i + b.trailing_zeros() as usize) as u32);
                b &= b - 1;
            }
        }
        if syms.len() != used
            || syms.first() != Some(&(first as u32))
            || syms.last() != Some(&((first + span - 1) as u32))
            || bitmap.len() * 8 > span as usize && bitmap[bitmap.len() - 1] >> (span % 8) != 0
        {
            return Err(Error::corrupt(
                "huffman symbol bitmap disagrees with its counts",
            ));
        }
    }
    let codes = &mut dec.codes;
    codes.clear();
    if used == 1 {
        dec.bits = 0;
        codes.push((0, 0));
        return Ok(());
    }
    let packed = r.take(used.div_ceil(2), "huffman code lengths")?;
    let mut max_len = 0u32;
    let mut kraft: u64 = 0;
    let mut count = [0u32; MAX_CODE_LEN as usize + 1];
    for k in 0..used {
        let b = packed[k / 2];
        let l = if k % 2 == 0 { b & 15 } else { b >> 4 };
        if l == 0 || l as u32 > MAX_CODE_LEN {
            return Err(Error::corrupt("huffman code length out of range"));
        }
        max_len = max_len.max(l as u32);
        kraft += 1u64 << (MAX_CODE_LEN - l as u32);
        count[l as usize] += 1;
        codes.push((0, l));
    }
    // Huffman codes are complete: every bit pattern starts a code, so decoders need no check.
    if kraft != 1u64 << MAX_CODE_LEN {
        return Err(Error::corrupt(
            "huffman code lengths do not form a complete code",
        ));
    }
    // the codes of `canonical_codes`
    let mut next = first_codes(&count);
    for c in codes.iter_mut() {
        let l = c.1 as usize;
        c.0 = next[l].reverse_bits() >> (32 - l);
        next[l] += 1;
    }
    dec.bits = max_len;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_symbol(bw: &mut BitWriter, codes: &[(u32, u8)], s: usize) {
        let (c, l) = codes[s];
        bw.write(c as u64, l as u32);
    }

    #[test]
    fn lengths_are_limited_and_complete() {
        let counts: Vec<u32> = (0..40).map(|i| 1u32 << (i % 30)).collect();
        let l = code_lengths(&counts);
        assert!(l.iter().all(|&x| x as u32 <= MAX_CODE_LEN && x > 0));
        let kraft: f64 = l.iter().map(|&x| 0.5f64.powi(x as i32)).sum();
        assert!(kraft <= 1.0 + 1e-12);
    }

    #[test]
    fn roundtrip() {
        let counts = vec![10u32, 0, 3, 7, 1, 0, 50];
        let lens = code_lengths(&counts);
        let codes = canonical_codes(&lens);
        let msg = [0usize, 6, 6, 2, 3, 4, 6, 0, 3];
        let mut bw = BitWriter::new(Vec::new());
        for &s in &msg {
            encode_symbol(&mut bw, &codes, s);
        }
        let data = bw.finish();
        let syms: Vec<u32> = (0..counts.len() as u32)
            .filter(|&i| counts[i as usize] > 0)
            .collect();
        let clens: Vec<u8> = syms.iter().map(|&i| lens[i as usize]).collect();
        let mut t = Vec::new();
        write_table(syms.iter().copied(), &clens, &mut t);
        let dec = read_table(&mut Reader::new(&t), counts.len()).unwrap();
        let mut table = vec![HOLE; 1 << dec.bits];
        dec.fill(&mut table, |i| (i as u32) << 8);
        let mut br = BitReader::new(&data);
        for &s in &msg {
            br.refill();
            let e = table[br.peek(dec.bits) as usize];
            assert_ne!(e, HOLE);
            br.consume(e & 0xff);
            assert_eq!(dec.syms[(e >> 8) as usize] as usize, s);
        }
    }

    /// `read_table` gives the symbols written and the codes of `canonical_codes`, in both
    /// layouts, and refuses every cut of the table.
    #[test]
    fn read_table_matches_canonical_codes() {
        let mut rnd = crate::testutil::xorshift(0x2545f4914f6cdd1du64);
        for round in 0..2000 {
            let alphabet = 1 + (rnd() % 3000) as usize;
            let dense = round % 2 == 0;
            let counts: Vec<u32> = (0..alphabet)
                .map(|_| {
                    if rnd().is_multiple_of(if dense { 2 } else { 40 }) {
                        1 + (rnd() % (1 << (rnd() % 16))) as u32
                    } else {
                        0
                    }
                })
                .collect();
            let syms: Vec<u32> = (0..alphabet as u32)
                .filter(|&i| counts[i as usize] > 0)
                .collect();
            if syms.is_empty() {
                continue;
            }
            let lens = code_lengths(&counts);
            let clens: Vec<u8> = syms.iter().map(|&i| lens[i as usize]).collect();
            let mut t = Vec::new();
            write_table(syms.iter().copied(), &clens, &mut t);
            let mut r = Reader::new(&t);
            let dec = read_table(&mut r, alphabet).unwrap();
            assert!(r.is_empty());
            assert_eq!(dec.syms, syms, "round {round}");
            if syms.len() == 1 {
                assert_eq!((dec.bits, &dec.codes[..]), (0, &[(0, 0)][..]));
            } else {
                assert_eq!(dec.codes, canonical_codes(&clens), "round {round}");
                assert_eq!(dec.bits, *clens.iter().max().unwrap() as u32);
            }
            for cut in [0, t.len() / 2, t.len() - 1] {
                assert!(read_table(&mut Reader::new(&t[..cut]), alphabet).is_err());
            }
        }
    }

    #[test]
    fn limited_lengths_match_reference() {
        let mut rnd = crate::testutil::xorshift(0x9e3779b97f4a7c15u64);
        for round in 0..3000 {
            let n = 1 + (rnd() % 300) as usize;
            let skew = (rnd() % 40) as u32;
            let counts: Vec<u32> = (0..n)
                .map(|_| {
                    let r = rnd();
                    if r.is_multiple_of(4) {
                        0
                    } else {
                        ((r >> 8) % (1u64 << (1 + (r >> 40) as u32 % skew.max(1)))) as u32
                    }
                })
                .collect();
            for max_len in [1, 5, 9, 12] {
                assert_eq!(
                    code_lengths_limited(counts.iter().copied(), max_len),
                    code_lengths_limited_reference(&counts, max_len),
                    "round {round}"
                );
            }
        }
    }
}
