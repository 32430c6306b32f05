//! Little-endian bit streams: bit `i` of the stream is bit `i % 8` of byte `i / 8`.
use crate::error::{Error, Result};

pub struct BitWriter {
    out: Vec<u8>,
    buf: u64,
    n: u32,
}

impl BitWriter {
    /// Appends to `out`, starting at a byte boundary.
    pub fn new(out: Vec<u8>) -> Self {
        BitWriter { out, buf: 0, n: 0 }
    }

    /// Writes the low `bits` bits of `v` (bits <= 64).
    #[inline]
    pub fn write(&mut self, v: u64, bits: u32) {
        if bits == 0 {
            return;
        }
        let v = if bits == 64 {
            v
        } else {
            v & ((1u64 << bits) - 1)
        };
        self.buf |= v << self.n;
        let total = self.n + bits;
        if total >= 64 {
            self.out.extend_from_slice(&self.buf.to_le_bytes());
            self.buf = if self.n == 0 { 0 } else { v >> (64 - self.n) };
            self.n = total - 64;
        } else {
            self.n = total;
        }
    }

    pub fn reserve(&mut self, bytes: usize) {
        self.out.reserve(bytes + 8);
    }

    /// Writes `bits` < 64 bits of `v`, whose higher bits must be zero.
    #[inline]
    pub fn write_small(&mut self, v: u64, bits: u32) {
        debug_assert!(bits < 64 && (v >> bits) == 0);
        self.buf |= v << self.n;
        let total = self.n + bits;
        if total >= 64 {
            self.out.extend_from_slice(&self.buf.to_le_bytes());
            self.buf = if self.n == 0 { 0 } else { v >> (64 - self.n) };
            self.n = total - 64;
        } else {
            self.n = total;
        }
    }

    pub fn finish(mut self) -> Vec<u8> {
        let bytes = self.n.div_ceil(8) as usize;
        // (eight bytes stored, those pending kept: a copy of a variable length would call
        // `memcpy`, whose branches on the length mispredict)
        let len = self.out.len();
        self.out.extend_from_slice(&self.buf.to_le_bytes());
        self.out.truncate(len + bytes);
        self.out
    }
}

pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    buf: u64,
    n: u32,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        BitReader {
            data,
            pos: 0,
            buf: 0,
            n: 0,
        }
    }

    /// Makes at least 56 bits available; past the end, zero bits are supplied and the
    /// overrun is detected by `finish`.
    #[inline(always)]
    pub fn refill(&mut self) {
        if let Some(w) = self.data.get(self.pos..self.pos + 8) {
            let w = u64::from_le_bytes(w.try_into().unwrap());
            self.buf |= w << self.n;
            let take = (63 - self.n) >> 3;
            self.pos += take as usize;
            self.n += take * 8;
        } else {
            self.refill_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn refill_slow(&mut self) {
        {
            while self.n <= 56 {
                let b = if self.pos < self.data.len() {
                    self.data[self.pos]
                } else {
                    0
                };
                self.buf |= (b as u64) << self.n;
                self.n += 8;
                self.pos += 1;
            }
        }
    }

    #[inline]
    pub fn available(&self) -> u32 {
        self.n
    }

    #[inline]
    pub fn peek(&self, bits: u32) -> u64 {
        self.buf & ((1u64 << bits) - 1)
    }

    #[inline]
    pub fn consume(&mut self, bits: u32) {
        self.buf >>= bits;
        self.n -= bits;
    }

    /// Reads `bits` <= 56 bits (call `refill` first or rely on the check here).
    #[inline]
    pub fn read(&mut self, bits: u32) -> u64 {
        if bits == 0 {
            return 0;
        }
        if self.n < bits {
            self.refill();
        }
        let v = self.buf & ((1u64 << bits) - 1);
        self.buf >>= bits;
        self.n -= bits;
        v
    }

    /// Takes `bits` <= `available()` bits (0 allowed) without refilling.
    #[inline]
    pub fn take_unchecked(&mut self, bits: u32) -> u64 {
        debug_assert!(bits <= self.n);
        if bits == 0 {
            return 0;
        }
        let v = self.buf & (u64::MAX >> (64 - bits));
        self.buf = if bits == 64 { 0 } else { self.buf >> bits };
        self.n -= bits;
        v
    }

    /// Reads up to 64 bits.
    #[inline]
    pub fn read_wide(&mut self, bits: u32) -> u64 {
        if bits <= 56 {
            self.read(bits)
        } else {
            let lo = self.read(32);
            lo | (self.read(bits - 32) << 32)
        }
    }

    /// Bits consumed so far.
    pub fn consumed(&self) -> usize {
        self.pos * 8 - self.n as usize
    }

    /// Fails if more bits were consumed than the data holds, or if whole bytes are left over.
    pub fn finish(&self, what: &str) -> Result<()> {
        let used = self.consumed();
        if used > self.data.len() * 8 {
            return Err(Error::corrupt(format!("truncated {what} bit stream")));
        }
        if used.div_ceil(8) != self.data.len() {
            return Err(Error::corrupt(format!(
                "{what} bit stream has trailing bytes"
            )));
        }
        Ok(())
    }
}

/// Packs `v` (each < 2^w) at `w` bits each.
pub fn pack(v: impl Iterator<Item = u64>, w: u32, out: Vec<u8>) -> Vec<u8> {
    let mut bw = BitWriter::new(out);
    for x in v {
        bw.write(x, w);
    }
    bw.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_mixed_widths() {
        let mut bw = BitWriter::new(Vec::new());
        let items: Vec<(u64, u32)> = (0..2000u64)
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15), (i % 65) as u32))
            .collect();
        for &(v, w) in &items {
            bw.write(v, w);
        }
        let b = bw.finish();
        let mut br = BitReader::new(&b);
        for &(v, w) in &items {
            let m = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
            assert_eq!(br.read_wide(w), v & m);
        }
        br.finish("test").unwrap();
    }

    #[test]
    fn overrun_detected() {
        let b = [0xffu8; 3];
        let mut br = BitReader::new(&b);
        br.read(20);
        br.read(20);
        assert!(br.finish("t").is_err());
    }
}
