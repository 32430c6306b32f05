//! Column codecs: a column is one strategy tag byte followed by that strategy's payload.
//! The value count `n` is known from the enclosing structure (frame series record or the
//! standalone header), never from the payload alone.
use crate::bytes::{put_varint, Reader};
use crate::error::{Error, Result};

/// Most values one column (and one frame) may hold; bounds every allocation a decoder makes.
pub const MAX_VALUES: usize = 1 << 22;

/// Decoded values of a column, kind preserved.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    F64(Vec<f64>),
    I64(Vec<i64>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::F64(v) => v.len(),
            Values::I64(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn as_ref(&self) -> ValuesRef<'_> {
        match self {
            Values::F64(v) => ValuesRef::F64(v),
            Values::I64(v) => ValuesRef::I64(v),
        }
    }
}

/// Borrowed values handed to an encoder.
#[derive(Debug, Clone, Copy)]
pub enum ValuesRef<'a> {
    F64(&'a [f64]),
    I64(&'a [i64]),
}

impl ValuesRef<'_> {
    pub fn len(&self) -> usize {
        match self {
            ValuesRef::F64(v) => v.len(),
            ValuesRef::I64(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn check_n(n: usize) -> Result<()> {
    if n > MAX_VALUES {
        return Err(Error::corrupt(format!(
            "column declares {n} values, limit is {MAX_VALUES}"
        )));
    }
    Ok(())
}

/// Integer column (timestamps, int64 values): see `intcodec`.
pub fn encode_int_column(v: &[i64], out: &mut Vec<u8>) {
    crate::intcodec::encode_ints(v, out)
}

pub fn decode_int_column(data: &[u8], n: usize) -> Result<Vec<i64>> {
    check_n(n)?;
    crate::intcodec::decode_ints(data, n)
}

/// Value column: integer strategies (tags below 0x40) keep int64, float strategies
/// (0x40..0x7f) keep float64.
pub fn encode_value_column(v: ValuesRef<'_>, out: &mut Vec<u8>) {
    match v {
        ValuesRef::I64(x) => crate::intcodec::encode_ints(x, out),
        ValuesRef::F64(x) => crate::floatcodec::encode_floats(x, out),
    }
}

pub fn decode_value_column(data: &[u8], n: usize) -> Result<Values> {
    check_n(n)?;
    let tag = *data
        .first()
        .ok_or_else(|| Error::corrupt("empty value column"))?;
    if tag < 0x40 {
        Ok(Values::I64(crate::intcodec::decode_ints(data, n)?))
    } else {
        Ok(Values::F64(crate::floatcodec::decode_floats(data, n)?))
    }
}

// ---------------------------------------------------------------- quality

pub const Q_ZERO: u8 = 0;
pub const Q_RAW: u8 = 1;
pub const Q_RLE: u8 = 2;

pub fn encode_quality(q: &[u8], out: &mut Vec<u8>) {
    if q.iter().all(|&b| b == 0) {
        out.push(Q_ZERO);
        return;
    }
    let mut rle = Vec::new();
    let mut i = 0;
    while i < q.len() {
        let b = q[i];
        let mut j = i + 1;
        while j < q.len() && q[j] == b {
            j += 1;
        }
        put_varint(&mut rle, (j - i) as u64);
        rle.push(b);
        i = j;
    }
    if rle.len() < q.len() {
        out.push(Q_RLE);
        out.extend_from_slice(&rle);
    } else {
        out.push(Q_RAW);
        out.extend_from_slice(q);
    }
}

pub fn decode_quality(data: &[u8], n: usize) -> Result<Vec<u8>> {
    check_n(n)?;
    let mut r = Reader::new(data);
    let out = match r.u8("quality tag")? {
        Q_ZERO => vec![0u8; n],
        Q_RAW => r.take(n, "raw quality column")?.to_vec(),
        Q_RLE => {
            let mut out = Vec::with_capacity(n);
            while out.len() < n {
                let run = r.varint("quality run")?;
                let b = r.u8("quality value")?;
                if run == 0 || run > (n - out.len()) as u64 {
                    return Err(Error::corrupt("quality run length out of range"));
                }
                out.resize(out.len() + run as usize, b);
            }
            out
        }
        t => {
            return Err(Error::corrupt(format!(
                "unknown quality strategy 0x{t:02x}"
            )))
        }
    };
    if !r.is_empty() {
        return Err(Error::corrupt(format!(
            "quality column has {} trailing bytes",
            r.remaining()
        )));
    }
    Ok(out)
}

// ---------------------------------------------------------------- standalone columns

/// `varint(n) || int column`: the format of `encode_timestamps`.
pub fn encode_timestamps(ts: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 2 * ts.len());
    put_varint(&mut out, ts.len() as u64);
    encode_int_column(ts, &mut out);
    out
}

pub fn decode_timestamps(data: &[u8]) -> Result<Vec<i64>> {
    let mut r = Reader::new(data);
    let n = r.varint("value count")?;
    if n > MAX_VALUES as u64 {
        return Err(Error::corrupt(format!(
            "column declares {n} values, limit is {MAX_VALUES}"
        )));
    }
    decode_int_column(r.rest(), n as usize)
}

/// `varint(n) || value column`: the format of `encode_values`.
pub fn encode_values(v: ValuesRef<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 2 * v.len());
    put_varint(&mut out, v.len() as u64);
    encode_value_column(v, &mut out);
    out
}

pub fn decode_values(data: &[u8]) -> Result<Values> {
    let mut r = Reader::new(data);
    let n = r.varint("value count")?;
    if n > MAX_VALUES as u64 {
        return Err(Error::corrupt(format!(
            "column declares {n} values, limit is {MAX_VALUES}"
        )));
    }
    decode_value_column(r.rest(), n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt_int(v: &[i64]) {
        let enc = encode_timestamps(v);
        assert_eq!(decode_timestamps(&enc).unwrap(), v);
        let enc = encode_values(ValuesRef::I64(v));
        assert_eq!(decode_values(&enc).unwrap(), Values::I64(v.to_vec()));
    }

    fn rt_f64(v: &[f64]) {
        let enc = encode_values(ValuesRef::F64(v));
        match decode_values(&enc).unwrap() {
            Values::F64(d) => {
                assert_eq!(d.len(), v.len());
                for (a, b) in d.iter().zip(v) {
                    assert_eq!(a.to_bits(), b.to_bits());
                }
            }
            other => panic!("kind changed: {other:?}"),
        }
    }

    #[test]
    fn int_roundtrips() {
        rt_int(&[]);
        rt_int(&[5]);
        rt_int(&[7; 100]);
        rt_int(&[i64::MIN, i64::MAX, 0, -1, 1, i64::MIN, i64::MAX]);
        let v: Vec<i64> = (0..5000)
            .map(|i| 1_700_000_000_000 + i * 1000 + (i * 7919 % 13))
            .collect();
        rt_int(&v);
        let v: Vec<i64> = (0..5000)
            .map(|i| (i as i64).wrapping_mul(0x9E3779B97F4A7C15u64 as i64))
            .collect();
        rt_int(&v);
    }

    #[test]
    fn float_roundtrips() {
        rt_f64(&[]);
        rt_f64(&[f64::NAN]);
        rt_f64(&[
            -0.0,
            0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::from_bits(0x7ff8_dead_beef_0001),
        ]);
        let v: Vec<f64> = (0..3000).map(|i| (i as f64 * 0.1).sin() * 100.0).collect();
        rt_f64(&v);
        let v: Vec<f64> = (0..3000).map(|i| ((i / 50) as f64) * 0.1).collect();
        rt_f64(&v);
    }

    /// Deterministic pseudo-random arrays of many shapes and sizes (a cheap property test; the
    /// hypothesis tests in tests/native go further).
    #[test]
    fn generated_roundtrips() {
        let mut next = crate::testutil::xorshift(0x1234_5678);
        for case in 0..400 {
            let n = [
                0usize, 1, 2, 3, 7, 63, 64, 65, 200, 511, 512, 513, 1000, 3000,
            ][case % 14];
            let shape = (case / 14) % 8;
            let scale = 1u64 << (next() % 64);
            let mut acc = next() as i64;
            let ints: Vec<i64> = (0..n)
                .map(|i| match shape {
                    0 => next() as i64,
                    1 => (next() % scale.max(1)) as i64 - (scale / 2) as i64,
                    2 => {
                        acc = acc.wrapping_add((next() % 1000) as i64);
                        acc
                    }
                    3 => {
                        1_600_000_000_000
                            + i as i64 * 1000
                            + if next().is_multiple_of(50) {
                                (next() % 100000) as i64
                            } else {
                                0
                            }
                    }
                    4 => {
                        if next().is_multiple_of(3) {
                            i64::MIN
                        } else {
                            i64::MAX
                        }
                    }
                    5 => ((next() % 7) as i64 - 3) * (scale as i64),
                    6 => acc.wrapping_mul(i as i64),
                    _ => (i as i64 / 17) % 5,
                })
                .collect();
            rt_int(&ints);
            let floats: Vec<f64> = ints
                .iter()
                .enumerate()
                .map(|(i, &v)| match shape {
                    0 => f64::from_bits(v as u64),
                    1 => v as f64 / 1000.0,
                    2 => (v % 100000) as f64 / 100.0,
                    3 => [f64::NAN, -0.0, 0.0, f64::INFINITY, 1e-310][i % 5],
                    4 => (v as f64).sqrt(),
                    5 => (v >> 40) as f64 * 0.1,
                    6 => f64::from_bits((v as u64) & 0x800f_ffff_ffff_ffff),
                    _ => ((i / 9) % 4) as f64 * 0.7 + 0.000000000000003,
                })
                .collect();
            rt_f64(&floats);
        }
    }

    #[test]
    fn quality_roundtrips() {
        for q in [
            vec![],
            vec![0u8; 10],
            vec![1, 2, 3],
            vec![0, 0, 0, 0, 5, 5, 5, 5, 5, 5, 0],
        ] {
            let mut b = Vec::new();
            encode_quality(&q, &mut b);
            assert_eq!(decode_quality(&b, q.len()).unwrap(), q);
        }
    }

    #[test]
    fn hostile_columns_fail_cleanly() {
        assert!(decode_timestamps(&[]).is_err());
        assert!(decode_timestamps(&[0xff, 0xff, 0xff, 0xff, 0x0f, 1, 0]).is_err());
        assert!(decode_values(&[3, 0x42, 1, 2, 3]).is_err());
        assert!(decode_values(&[3, 0x7f]).is_err());
        assert!(decode_quality(&[Q_RLE, 0, 1], 3).is_err());
        assert!(decode_quality(&[Q_RLE, 5, 1], 3).is_err());
    }
}
