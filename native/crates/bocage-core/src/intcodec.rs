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
//!     (see `bin_of`).
//!   * `3` SPARSE: zigzag varint `c`, varint `e` (exceptions), then `e` pairs
//!     (varint position gap, zigzag varint `r - c`); every other residual is `c`.
use crate::bits::{BitReader, BitWriter};
use crate::bytes::{put_varint, unzigzag, varint_len, zigzag, Reader};
use crate::error::{Error, Result};
use crate::huffman;

pub const I_RAW: u8 = 0x00;
pub const I_CONST: u8 = 0x01;
pub const I_PIPE: u8 = 0x10;
const R_CONST: u8 = 0;
const R_PACK: u8 = 1;
const R_HUFF: u8 = 2;
const R_SPARSE: u8 = 3;
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
    let lim = 1u64 << (m + 1);
    if z < lim {
        (z as u32, 0)
    } else {
        let bl = 64 - z.leading_zeros();
        let e = bl - (m + 1);
        let t = (z >> e) as u32;
        ((lim as u32) + ((e - 1) << m) + (t - (1 << m)), e)
    }
}

/// (lowest value, extra bits) of bin `s` at precision `m`.
#[inline]
pub fn bin_base(s: u32, m: u32) -> (u64, u32) {
    let lim = 1u32 << (m + 1);
    if s < lim {
        (s as u64, 0)
    } else {
        let k = s - lim;
        let e = (k >> m) + 1;
        let t = (1u64 << m) | (k & ((1 << m) - 1)) as u64;
        (t << e, e)
    }
}

fn diffs(v: &[i64]) -> Vec<i64> {
    v.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect()
}

#[inline]
fn bitlen(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// Rough cost in bits of residuals `r` (for choosing the difference order).
fn proxy_cost(r: &[i64]) -> u64 {
    if r.is_empty() {
        return 0;
    }
    let step = (r.len() / 31).max(1);
    let mut sample: Vec<i64> = r.iter().step_by(step).copied().collect();
    let mid = sample.len() / 2;
    let c = *sample.select_nth_unstable(mid).1;
    r.iter().map(|&x| bitlen(zigzag(x.wrapping_sub(c))) as u64 + 1).sum()
}

pub fn encode_ints(v: &[i64], out: &mut Vec<u8>) {
    let n = v.len();
    if n == 0 {
        out.push(I_RAW);
        return;
    }
    if v.iter().all(|&x| x == v[0]) {
        out.push(I_CONST);
        put_varint(out, zigzag(v[0]));
        return;
    }
    let d1 = diffs(v);
    let d2 = if n > 2 { diffs(&d1) } else { Vec::new() };
    let mut best_d = 0usize;
    let mut best = proxy_cost(v);
    for (d, r) in [(1usize, &d1), (2usize, &d2)] {
        if n <= d {
            continue;
        }
        let c = proxy_cost(r) + 40 * d as u64;
        if c < best {
            best = c;
            best_d = d;
        }
    }
    let r: &[i64] = match best_d {
        0 => v,
        1 => &d1,
        _ => &d2,
    };
    let start = out.len();
    out.push(0); // tag, patched below
    if best_d >= 1 {
        put_varint(out, zigzag(v[0]));
    }
    if best_d >= 2 {
        put_varint(out, zigzag(d1[0]));
    }
    let method = encode_residuals(r, out);
    out[start] = I_PIPE | ((best_d as u8) << 2) | method;
    // Never worse than raw.
    if out.len() - start > 1 + 8 * n {
        out.truncate(start);
        out.push(I_RAW);
        for &x in v {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
}

/// Writes the residual payload, returns the method.
fn encode_residuals(r: &[i64], out: &mut Vec<u8>) -> u8 {
    let k = r.len();
    if r.iter().all(|&x| x == r[0]) {
        put_varint(out, zigzag(r[0]));
        return R_CONST;
    }
    let mut tmp = r.to_vec();
    let c = *tmp.select_nth_unstable(k / 2).1;
    let (mut lo, mut hi) = (r[0], r[0]);
    let mut exceptions = 0usize;
    for &x in r {
        lo = lo.min(x);
        hi = hi.max(x);
        exceptions += (x != c) as usize;
    }
    // PACK
    let w = bitlen(hi.wrapping_sub(lo) as u64);
    let pack_size = varint_len(zigzag(lo)) + 1 + (k * w as usize).div_ceil(8);
    // SPARSE
    let sparse_size = if exceptions <= k / 4 {
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
    // HUFF: histogram at the finest precision worth its table, then coarser ones by merging.
    let top_m: u32 = if k < 48 { 2 } else if k < 200 { 4 } else if k < 2000 { 6 } else { MAX_M };
    let mut hist = vec![0u32; alphabet(top_m)];
    for &x in r {
        hist[bin_of(zigzag(x.wrapping_sub(c)), top_m).0 as usize] += 1;
    }
    let used: Vec<u32> = (0..hist.len() as u32).filter(|&s| hist[s as usize] > 0).collect();
    let mut best_huff: Option<(usize, u32, Vec<u8>, Option<usize>)> = None;
    for m in 0..=top_m {
        let mut h = vec![0u32; alphabet(m)];
        let mut extra: u64 = 0;
        for &s in &used {
            let (base, _) = bin_base(s, top_m);
            let (b, e) = bin_of(base, m);
            h[b as usize] += hist[s as usize];
            extra += e as u64 * hist[s as usize] as u64;
        }
        let lens = huffman::code_lengths(&h);
        let single = if lens.iter().all(|&l| l == 0) { h.iter().position(|&x| x > 0) } else { None };
        let bits = huffman::coded_bits(&h, &lens) + extra;
        let size = varint_len(zigzag(c)) + 1 + huffman::table_bytes(&lens, single.is_some()) + bits.div_ceil(8) as usize;
        if best_huff.as_ref().is_none_or(|b| size < b.0) {
            best_huff = Some((size, m, lens, single));
        }
    }
    let (huff_size, m, lens, single) = best_huff.unwrap();
    if sparse_size <= pack_size && sparse_size <= huff_size {
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
        return R_SPARSE;
    }
    if pack_size <= huff_size {
        put_varint(out, zigzag(lo));
        out.push(w as u8);
        let body = std::mem::take(out);
        *out = crate::bits::pack(r.iter().map(|&x| x.wrapping_sub(lo) as u64), w, body);
        return R_PACK;
    }
    put_varint(out, zigzag(c));
    out.push(m as u8);
    huffman::write_table(&lens, single, out);
    let codes = huffman::canonical_codes(&lens);
    let mut bw = BitWriter::new(std::mem::take(out));
    for &x in r {
        let z = zigzag(x.wrapping_sub(c));
        let (b, e) = bin_of(z, m);
        let (code, l) = codes[b as usize];
        bw.write(code as u64, l as u32);
        if e > 0 {
            bw.write(z, e);
        }
    }
    *out = bw.finish();
    R_HUFF
}

pub fn decode_ints(data: &[u8], n: usize) -> Result<Vec<i64>> {
    let mut r = Reader::new(data);
    let tag = r.u8("integer column tag")?;
    let out = match tag {
        I_RAW => {
            let raw = r.take(n * 8, "raw integer column")?;
            raw.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
        }
        I_CONST => vec![unzigzag(r.varint("constant")?); n],
        t if t & 0xf0 == I_PIPE => {
            let d = ((t >> 2) & 3) as usize;
            if d > 2 || d > n {
                return Err(Error::corrupt(format!("bad difference order {d} for {n} values")));
            }
            let x0 = if d >= 1 { unzigzag(r.varint("first value")?) } else { 0 };
            let y0 = if d >= 2 { unzigzag(r.varint("first difference")?) } else { 0 };
            let mut res = decode_residuals(t & 3, &mut r, n - d)?;
            match d {
                0 => res,
                1 => {
                    let mut out = Vec::with_capacity(n);
                    let mut acc = x0;
                    out.push(acc);
                    for &x in &res {
                        acc = acc.wrapping_add(x);
                        out.push(acc);
                    }
                    out
                }
                _ => {
                    // second differences -> first differences -> values
                    let mut acc = y0;
                    for x in res.iter_mut() {
                        acc = acc.wrapping_add(*x);
                        *x = acc;
                    }
                    let mut out = Vec::with_capacity(n);
                    let mut v = x0;
                    out.push(v);
                    v = v.wrapping_add(y0);
                    out.push(v);
                    for &x in &res {
                        v = v.wrapping_add(x);
                        out.push(v);
                    }
                    out
                }
            }
        }
        t => return Err(Error::corrupt(format!("unknown integer column strategy 0x{t:02x}"))),
    };
    if !r.is_empty() {
        return Err(Error::corrupt(format!("integer column has {} trailing bytes", r.remaining())));
    }
    Ok(out)
}

fn decode_residuals(method: u8, r: &mut Reader<'_>, k: usize) -> Result<Vec<i64>> {
    match method {
        R_CONST => Ok(vec![unzigzag(r.varint("constant residual")?); k]),
        R_PACK => {
            let lo = unzigzag(r.varint("pack minimum")?);
            let w = r.u8("pack width")? as u32;
            if w > 64 {
                return Err(Error::corrupt(format!("pack width {w} over 64")));
            }
            let bytes = (k * w as usize).div_ceil(8);
            let body = r.take(bytes, "packed residuals")?;
            let mut br = BitReader::new(body);
            let mut out = Vec::with_capacity(k);
            for _ in 0..k {
                out.push(lo.wrapping_add(br.read_wide(w) as i64));
            }
            br.finish("packed residuals")?;
            Ok(out)
        }
        R_SPARSE => {
            let c = unzigzag(r.varint("sparse centre")?);
            let e = r.varint("exception count")?;
            if e > k as u64 || e > r.remaining() as u64 {
                return Err(Error::corrupt("too many exceptions"));
            }
            let mut out = vec![c; k];
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
                out[pos] = c.wrapping_add(unzigzag(r.varint("exception")?));
            }
            Ok(out)
        }
        _ => {
            let c = unzigzag(r.varint("huffman centre")?);
            let m = r.u8("bin precision")? as u32;
            if m > MAX_M {
                return Err(Error::corrupt(format!("bin precision {m} over {MAX_M}")));
            }
            let dec = huffman::read_table(r, alphabet(m))?;
            let body = r.rest();
            *r = Reader::new(&[]);
            let mut br = BitReader::new(body);
            let mut out = Vec::with_capacity(k);
            let lim = 1u32 << (m + 1);
            let mask = (1u32 << m) - 1;
            for _ in 0..k {
                br.refill();
                let s = dec.decode(&mut br)?;
                let z = if s < lim {
                    s as u64
                } else {
                    let q = s - lim;
                    let e = (q >> m) + 1;
                    let t = (1u64 << m) | (q & mask) as u64;
                    (t << e) | br.read_wide(e)
                };
                out.push(c.wrapping_add(unzigzag(z)));
            }
            br.finish("huffman residuals")?;
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn bins_roundtrip() {
        for m in 0..=MAX_M {
            for z in [0u64, 1, 2, 3, 7, 8, 100, 1 << 20, u64::MAX, u64::MAX - 5, 12345678901234] {
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
        for n in 1..70 {
            let v: Vec<i64> = (0..n).map(|i| (i * i) as i64 - 30).collect();
            rt(&v);
        }
    }
}
