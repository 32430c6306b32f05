//! A DDSketch-class quantile sketch: relative-error guarantee on quantile values, exact merge.
//!
//! Positive values go to bin `ceil(log_gamma(x))` with `gamma = (1 + a) / (1 - a)`; a bin
//! `k` covers `(gamma^(k-1), gamma^k]` and is represented by `2 gamma^k / (gamma + 1)`, which
//! is within relative error `a` of every value of the bin. Negative values use a mirrored
//! store keyed by `|x|`; zeros have their own counter. The two stores together hold at most
//! `MAX_BINS` bins: beyond that the bins of smallest magnitude are merged upwards ("collapse
//! lowest"), which only affects quantiles that fall in that collapsed range.
use crate::bytes::{put_varint, unzigzag, zigzag, Reader};
use crate::error::{Error, Result};

pub const MAX_BINS: usize = 2048;
const MAGIC: [u8; 4] = *b"BQS1";

#[derive(Debug, Clone, Default, PartialEq)]
struct Store {
    offset: i64,
    bins: Vec<u64>,
}

impl Store {
    fn span(&self) -> usize {
        self.bins.len()
    }
    fn lowest(&self) -> Option<i64> {
        if self.bins.is_empty() {
            None
        } else {
            Some(self.offset)
        }
    }
    /// Makes bins for keys `lo..=hi` exist (without any cap).
    fn extend(&mut self, lo: i64, hi: i64) {
        if self.bins.is_empty() {
            self.offset = lo;
            self.bins = vec![0; (hi - lo + 1) as usize];
            return;
        }
        let cur_hi = self.offset + self.bins.len() as i64 - 1;
        if hi > cur_hi {
            self.bins
                .resize(self.bins.len() + (hi - cur_hi) as usize, 0);
        }
        if lo < self.offset {
            let grow = (self.offset - lo) as usize;
            let mut v = vec![0u64; grow + self.bins.len()];
            v[grow..].copy_from_slice(&self.bins);
            self.bins = v;
            self.offset = lo;
        }
    }
    /// Merges the `k` lowest bins into the next one.
    fn collapse_lowest(&mut self, k: usize) {
        let k = k.min(self.bins.len().saturating_sub(1));
        if k == 0 {
            return;
        }
        let s: u64 = self.bins[..k]
            .iter()
            .fold(0u64, |a, &b| a.saturating_add(b));
        self.bins.drain(..k);
        self.bins[0] = self.bins[0].saturating_add(s);
        self.offset += k as i64;
    }
    #[inline]
    fn add(&mut self, key: i64, c: u64) {
        let idx = (key.max(self.offset) - self.offset) as usize;
        self.bins[idx] = self.bins[idx].saturating_add(c);
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sketch {
    alpha: f64,
    gamma: f64,
    inv_ln_gamma: f64,
    count: u64,
    zero: u64,
    min: f64,
    max: f64,
    sum: f64,
    pos: Store,
    neg: Store,
}

impl Sketch {
    pub fn new(relative_accuracy: f64) -> Result<Sketch> {
        if !(relative_accuracy > 0.0 && relative_accuracy < 1.0) || relative_accuracy < 1e-6 {
            return Err(Error::invalid(format!(
                "relative_accuracy must be in [1e-6, 1), got {relative_accuracy}"
            )));
        }
        let gamma = (1.0 + relative_accuracy) / (1.0 - relative_accuracy);
        Ok(Sketch {
            alpha: relative_accuracy,
            gamma,
            inv_ln_gamma: 1.0 / gamma.ln(),
            count: 0,
            zero: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: 0.0,
            pos: Store::default(),
            neg: Store::default(),
        })
    }

    pub fn relative_accuracy(&self) -> f64 {
        self.alpha
    }
    pub fn count(&self) -> u64 {
        self.count
    }
    pub fn sum(&self) -> f64 {
        self.sum
    }
    pub fn min(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.min
        }
    }
    pub fn max(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.max
        }
    }

    #[inline]
    fn key(&self, a: f64) -> i64 {
        (a.ln() * self.inv_ln_gamma).ceil() as i64
    }

    fn value_of(&self, key: i64) -> f64 {
        2.0 * self.gamma.powf(key as f64) / (self.gamma + 1.0)
    }

    /// Keeps the two stores within `MAX_BINS` by merging the lowest-magnitude bins.
    fn enforce_cap(&mut self) {
        while self.pos.span() + self.neg.span() > MAX_BINS {
            let excess = self.pos.span() + self.neg.span() - MAX_BINS;
            let target = match (self.pos.lowest(), self.neg.lowest()) {
                (Some(p), Some(n)) if self.pos.span() > 1 && (p <= n || self.neg.span() <= 1) => 0,
                (Some(_), Some(_)) if self.neg.span() > 1 => 1,
                (Some(_), None) => 0,
                (None, Some(_)) => 1,
                _ => return,
            };
            // Collapse towards the other store's lowest key, at most the excess at once.
            let (st, other) = if target == 0 {
                (&mut self.pos, &self.neg)
            } else {
                (&mut self.neg, &self.pos)
            };
            let k = match other.lowest() {
                Some(o) if o > st.offset => ((o - st.offset) as usize).clamp(1, excess),
                _ => excess,
            };
            st.collapse_lowest(k);
            if st.span() <= 1 && other.span() <= 1 {
                return;
            }
        }
    }

    fn ensure(&mut self, negative: bool, lo: i64, hi: i64) {
        {
            let st = if negative {
                &mut self.neg
            } else {
                &mut self.pos
            };
            // Keys below an already collapsed floor land in the floor bin, so only extend upwards
            // past the cap; never grow downwards by more than the cap allows.
            let lo = if st.bins.is_empty() {
                lo.max(hi - MAX_BINS as i64 + 1)
            } else {
                lo.max(st.offset.min(hi) - MAX_BINS as i64 + 1)
                    .max(hi - MAX_BINS as i64 + 1)
            };
            st.extend(lo, hi);
        }
        self.enforce_cap();
    }

    /// Adds a batch of values. Fails (adding nothing) if any value is NaN or infinite.
    pub fn add(&mut self, values: &[f64]) -> Result<()> {
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(format!(
                "sketch values must be finite; value {} at index {i} is not",
                values[i]
            )));
        }
        const CHUNK: usize = 512;
        let mut keys = [0i64; CHUNK];
        for chunk in values.chunks(CHUNK) {
            let (mut plo, mut phi, mut nlo, mut nhi) = (i64::MAX, i64::MIN, i64::MAX, i64::MIN);
            for (k, &v) in keys.iter_mut().zip(chunk) {
                if v > 0.0 {
                    let key = self.key(v);
                    *k = key;
                    plo = plo.min(key);
                    phi = phi.max(key);
                } else if v < 0.0 {
                    let key = self.key(-v);
                    *k = key;
                    nlo = nlo.min(key);
                    nhi = nhi.max(key);
                }
                self.min = self.min.min(v);
                self.max = self.max.max(v);
                self.sum += v;
            }
            if plo <= phi {
                self.ensure(false, plo, phi);
            }
            if nlo <= nhi {
                self.ensure(true, nlo, nhi);
            }
            for (&k, &v) in keys.iter().zip(chunk) {
                if v > 0.0 {
                    self.pos.add(k, 1);
                } else if v < 0.0 {
                    self.neg.add(k, 1);
                } else {
                    self.zero += 1;
                }
            }
            self.count += chunk.len() as u64;
        }
        Ok(())
    }

    pub fn merge(&mut self, other: &Sketch) -> Result<()> {
        if self.alpha.to_bits() != other.alpha.to_bits() {
            return Err(Error::invalid(format!(
                "cannot merge sketches of different relative accuracy ({} and {})",
                self.alpha, other.alpha
            )));
        }
        for (negative, st) in [(false, &other.pos), (true, &other.neg)] {
            if st.bins.is_empty() {
                continue;
            }
            self.ensure(negative, st.offset, st.offset + st.bins.len() as i64 - 1);
            let mine = if negative {
                &mut self.neg
            } else {
                &mut self.pos
            };
            for (i, &c) in st.bins.iter().enumerate() {
                if c > 0 {
                    mine.add(st.offset + i as i64, c);
                }
            }
        }
        self.zero = self.zero.saturating_add(other.zero);
        self.count = self.count.saturating_add(other.count);
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        Ok(())
    }

    /// The `q`-quantile (0 ≤ q ≤ 1); NaN for an empty sketch.
    pub fn quantile(&self, q: f64) -> Result<f64> {
        if !(0.0..=1.0).contains(&q) {
            return Err(Error::invalid(format!(
                "quantile must be within [0, 1], got {q}"
            )));
        }
        if self.count == 0 {
            return Ok(f64::NAN);
        }
        if q == 0.0 {
            return Ok(self.min);
        }
        if q == 1.0 {
            return Ok(self.max);
        }
        let rank = q * (self.count - 1) as f64;
        let mut cum: u64 = 0;
        let mut found = None;
        // negatives, most negative first
        for (i, &c) in self.neg.bins.iter().enumerate().rev() {
            cum += c;
            if cum as f64 > rank {
                found = Some(-self.value_of(self.neg.offset + i as i64));
                break;
            }
        }
        if found.is_none() {
            cum += self.zero;
            if cum as f64 > rank {
                found = Some(0.0);
            }
        }
        if found.is_none() {
            for (i, &c) in self.pos.bins.iter().enumerate() {
                cum += c;
                if cum as f64 > rank {
                    found = Some(self.value_of(self.pos.offset + i as i64));
                    break;
                }
            }
        }
        let v = found.unwrap_or(self.max);
        Ok(v.clamp(self.min, self.max))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 2 * (self.pos.span() + self.neg.span()));
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.alpha.to_le_bytes());
        put_varint(&mut out, self.count);
        put_varint(&mut out, self.zero);
        out.extend_from_slice(&self.min.to_le_bytes());
        out.extend_from_slice(&self.max.to_le_bytes());
        out.extend_from_slice(&self.sum.to_le_bytes());
        for st in [&self.pos, &self.neg] {
            put_varint(&mut out, st.bins.len() as u64);
            if !st.bins.is_empty() {
                put_varint(&mut out, zigzag(st.offset));
                // a non-empty bin c as varint(2c), a run of r empty bins as varint(2r - 1)
                let mut i = 0;
                while i < st.bins.len() {
                    if st.bins[i] == 0 {
                        let mut j = i;
                        while j < st.bins.len() && st.bins[j] == 0 {
                            j += 1;
                        }
                        put_varint(&mut out, 2 * (j - i) as u64 - 1);
                        i = j;
                    } else {
                        put_varint(&mut out, st.bins[i].saturating_mul(2));
                        i += 1;
                    }
                }
            }
        }
        out
    }

    pub fn from_bytes(data: &[u8]) -> Result<Sketch> {
        let mut r = Reader::new(data);
        if r.take(4, "sketch magic")? != MAGIC {
            return Err(Error::corrupt("not a Bocage quantile sketch (bad magic)"));
        }
        let alpha = f64::from_bits(r.u64("relative accuracy")?);
        let mut s = Sketch::new(alpha).map_err(|e| Error::corrupt(e.to_string()))?;
        s.count = r.varint("count")?;
        s.zero = r.varint("zero count")?;
        s.min = f64::from_bits(r.u64("min")?);
        s.max = f64::from_bits(r.u64("max")?);
        s.sum = f64::from_bits(r.u64("sum")?);
        let mut total: u64 = s.zero;
        let mut spans = 0usize;
        for negative in [false, true] {
            let len = r.varint("bin count")?;
            if len as usize > MAX_BINS - spans {
                return Err(Error::corrupt("sketch has too many bins"));
            }
            spans += len as usize;
            let mut st = Store::default();
            if len > 0 {
                st.offset = unzigzag(r.varint("bin offset")?);
                if st.offset.unsigned_abs() > 1 << 40 {
                    return Err(Error::corrupt("sketch bin offset out of range"));
                }
                st.bins.reserve(len as usize);
                while st.bins.len() < len as usize {
                    let t = r.varint("bin")?;
                    if t % 2 == 1 {
                        let run = t.div_ceil(2);
                        if run > len - st.bins.len() as u64 {
                            return Err(Error::corrupt("sketch empty-bin run too long"));
                        }
                        st.bins.resize(st.bins.len() + run as usize, 0);
                    } else {
                        let c = t / 2;
                        if c == 0 {
                            return Err(Error::corrupt("sketch bin encoding invalid"));
                        }
                        total = total
                            .checked_add(c)
                            .ok_or_else(|| Error::corrupt("sketch count overflow"))?;
                        st.bins.push(c);
                    }
                }
            }
            if negative {
                s.neg = st
            } else {
                s.pos = st
            }
        }
        if !r.is_empty() {
            return Err(Error::corrupt("trailing bytes after sketch"));
        }
        if total != s.count {
            return Err(Error::corrupt("sketch bins do not add up to its count"));
        }
        if s.count > 0
            && !(s.min.is_finite() && s.max.is_finite() && s.min <= s.max && !s.sum.is_nan())
        {
            return Err(Error::corrupt("sketch min/max/sum invalid"));
        }
        if s.count == 0 {
            s.min = f64::INFINITY;
            s.max = f64::NEG_INFINITY;
            s.sum = 0.0;
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact_q(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    #[test]
    fn accuracy_and_merge() {
        let mut a = Sketch::new(0.01).unwrap();
        let mut b = Sketch::new(0.01).unwrap();
        let mut all = Vec::new();
        let mut x: u64 = 12345;
        for i in 0..20000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = ((x >> 11) as f64 / (1u64 << 53) as f64) * 1000.0 - 200.0;
            all.push(v);
            if i % 2 == 0 {
                a.add(&[v]).unwrap()
            } else {
                b.add(&[v]).unwrap()
            }
        }
        a.merge(&b).unwrap();
        all.sort_by(|p, q| p.partial_cmp(q).unwrap());
        for q in [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99] {
            let e = exact_q(&all, q);
            let got = a.quantile(q).unwrap();
            assert!(
                (got - e).abs() <= 0.0101 * e.abs() + 1e-9,
                "q {q}: {got} vs {e}"
            );
        }
        let bytes = a.to_bytes();
        assert!(bytes.len() <= 5120, "{}", bytes.len());
        let c = Sketch::from_bytes(&bytes).unwrap();
        assert_eq!(c, a);
    }

    #[test]
    fn cap_holds_on_huge_ranges() {
        let mut s = Sketch::new(0.01).unwrap();
        let v: Vec<f64> = (-300..300)
            .flat_map(|e| [10f64.powi(e), -(10f64.powi(e))])
            .collect();
        s.add(&v).unwrap();
        assert!(s.pos.span() + s.neg.span() <= MAX_BINS);
        assert_eq!(s.count(), v.len() as u64);
        // the collapsed bins are the smallest magnitudes: large quantiles keep the guarantee
        let mut sorted = v.clone();
        sorted.sort_by(|p, q| p.partial_cmp(q).unwrap());
        for q in [0.0, 1.0] {
            let e = exact_q(&sorted, q);
            let got = s.quantile(q).unwrap();
            assert!((got - e).abs() <= 0.0101 * e.abs(), "q {q}: {got} vs {e}");
        }
        assert!(s.to_bytes().len() <= 5120);
    }

    #[test]
    fn hostile_bytes() {
        assert!(Sketch::from_bytes(b"").is_err());
        assert!(Sketch::from_bytes(b"BQS1").is_err());
        let s = Sketch::new(0.01).unwrap();
        let b = s.to_bytes();
        for cut in 0..b.len() {
            assert!(Sketch::from_bytes(&b[..cut]).is_err());
        }
        assert!(s.clone().add(&[f64::NAN]).is_err());
    }
}
