//! Grouped tumbling-window aggregation over many series at once.
//!
//! Windows are aligned to the epoch: a reading at `t` falls in the window starting at
//! `floor(t / window) * window`. Output rows are sorted by (series, window_start).
//!
//! * `first` / `last` are the values of the earliest / latest reading of the window (ties
//!   on the timestamp are broken by input order).
//! * `time_weighted_mean`: the series is read as a step function (each value holds until the
//!   next reading); inside a window, a reading's weight is the time until the next reading of
//!   the same series or until the window's end, whichever comes first. The span from the window
//!   start to its first reading is not counted (no value is carried in from an earlier window),
//!   so the result depends only on the window's own readings and the mean of one reading is
//!   that reading.
//! * `increase`: sum of the non-negative steps between consecutive readings of a series; a drop
//!   is a counter reset, and the new value counts from 0 (the step is the new value). The step
//!   that arrives in a window from the previous reading of the series (in an earlier window)
//!   belongs to the later window, so increases of consecutive windows add up to the increase of
//!   the whole input.
//! * Readings whose value is NaN are ignored.
use crate::error::{Error, Result};

#[derive(Debug, Default, Clone, PartialEq)]
pub struct AggOut {
    pub series: Vec<i64>,
    pub window_start: Vec<i64>,
    pub count: Vec<i64>,
    pub sum: Vec<f64>,
    pub min: Vec<f64>,
    pub max: Vec<f64>,
    pub mean: Vec<f64>,
    pub first: Vec<f64>,
    pub last: Vec<f64>,
    pub time_weighted_mean: Vec<f64>,
    pub increase: Vec<f64>,
}

impl AggOut {
    fn with_capacity(n: usize) -> Self {
        AggOut {
            series: Vec::with_capacity(n),
            window_start: Vec::with_capacity(n),
            count: Vec::with_capacity(n),
            sum: Vec::with_capacity(n),
            min: Vec::with_capacity(n),
            max: Vec::with_capacity(n),
            mean: Vec::with_capacity(n),
            first: Vec::with_capacity(n),
            last: Vec::with_capacity(n),
            time_weighted_mean: Vec::with_capacity(n),
            increase: Vec::with_capacity(n),
        }
    }
    pub fn len(&self) -> usize {
        self.series.len()
    }
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

#[inline]
fn window_of(t: i64, w: i64) -> Result<i64> {
    t.div_euclid(w)
        .checked_mul(w)
        .ok_or_else(|| Error::invalid(format!("timestamp {t} has no window of {w} ms in range")))
}

struct Acc {
    series: i64,
    ws: i64,
    count: i64,
    sum: f64,
    min: f64,
    max: f64,
    first: f64,
    last: f64,
    last_t: i64,
    tw_num: f64,
    first_t: i64,
    inc: f64,
}

impl Acc {
    fn flush(&self, w: i64, out: &mut AggOut) {
        let end = self.ws.wrapping_add(w);
        // weight of the last reading: until the window ends
        let tw_num = self.tw_num + self.last * (end as f64 - self.last_t as f64);
        let span = end as f64 - self.first_t as f64;
        out.series.push(self.series);
        out.window_start.push(self.ws);
        out.count.push(self.count);
        out.sum.push(self.sum);
        out.min.push(self.min);
        out.max.push(self.max);
        out.mean.push(self.sum / self.count as f64);
        out.first.push(self.first);
        out.last.push(self.last);
        out.time_weighted_mean.push(if span > 0.0 { tw_num / span } else { self.last });
        out.increase.push(self.inc);
    }
}

/// Aggregates rows `(series[i], timestamps[i], values[i])` into tumbling windows of
/// `window_ms` milliseconds. Rows may come in any order.
pub fn aggregate(series: &[i64], timestamps: &[i64], values: &[f64], window_ms: i64) -> Result<AggOut> {
    let n = series.len();
    if timestamps.len() != n || values.len() != n {
        return Err(Error::invalid(format!(
            "series, timestamps and values must have the same length ({n}, {}, {})",
            timestamps.len(),
            values.len()
        )));
    }
    if window_ms <= 0 {
        return Err(Error::invalid(format!("window_ms must be positive, got {window_ms}")));
    }
    let sorted = (1..n).all(|i| (series[i - 1], timestamps[i - 1]) <= (series[i], timestamps[i]));
    if sorted {
        aggregate_ordered(n, |i| i, series, timestamps, values, window_ms)
    } else {
        let order = sort_order(series, timestamps);
        aggregate_ordered(n, |i| order[i] as usize, series, timestamps, values, window_ms)
    }
}

/// Row order sorted by (series, timestamp), ties kept in input order.
fn sort_order(series: &[i64], timestamps: &[i64]) -> Vec<u32> {
    let n = series.len();
    let mut keys: Vec<(i64, i64, u32)> = (0..n).map(|i| (series[i], timestamps[i], i as u32)).collect();
    keys.sort_unstable();
    keys.into_iter().map(|k| k.2).collect()
}

fn aggregate_ordered(
    n: usize,
    at: impl Fn(usize) -> usize,
    series: &[i64],
    timestamps: &[i64],
    values: &[f64],
    w: i64,
) -> Result<AggOut> {
    let mut out = AggOut::with_capacity(if n > 0 { n / 16 + 1 } else { 0 });
    let mut acc: Option<Acc> = None;
    // previous non-NaN reading of the current series, for `increase`
    let mut prev: Option<(i64, f64)> = None;
    for k in 0..n {
        let i = at(k);
        let v = values[i];
        if v.is_nan() {
            continue;
        }
        let s = series[i];
        let t = timestamps[i];
        let ws = window_of(t, w)?;
        let step = match prev {
            Some((ps, pv)) if ps == s => {
                let d = v - pv;
                if d >= 0.0 {
                    d
                } else {
                    v
                }
            }
            _ => 0.0,
        };
        prev = Some((s, v));
        match &mut acc {
            Some(a) if a.series == s && a.ws == ws => {
                a.count += 1;
                a.sum += v;
                if v < a.min {
                    a.min = v;
                }
                if v > a.max {
                    a.max = v;
                }
                a.tw_num += a.last * (t as f64 - a.last_t as f64);
                a.last = v;
                a.last_t = t;
                a.inc += step;
            }
            _ => {
                if let Some(a) = &acc {
                    a.flush(w, &mut out);
                }
                acc = Some(Acc {
                    series: s,
                    ws,
                    count: 1,
                    sum: v,
                    min: v,
                    max: v,
                    first: v,
                    last: v,
                    last_t: t,
                    tw_num: 0.0,
                    first_t: t,
                    inc: step,
                });
            }
        }
    }
    if let Some(a) = &acc {
        a.flush(w, &mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_windows() {
        let s = [1i64, 1, 1, 1, 2];
        let t = [0i64, 10, 30, 60, 5];
        let v = [1.0, 3.0, 2.0, 10.0, 7.0];
        let o = aggregate(&s, &t, &v, 60).unwrap();
        assert_eq!(o.series, vec![1, 1, 2]);
        assert_eq!(o.window_start, vec![0, 60, 0]);
        assert_eq!(o.count, vec![3, 1, 1]);
        assert_eq!(o.sum, vec![6.0, 10.0, 7.0]);
        assert_eq!(o.first, vec![1.0, 10.0, 7.0]);
        assert_eq!(o.last, vec![2.0, 10.0, 7.0]);
        // 1 for 10 ms, 3 for 20 ms, 2 for 30 ms over 60 ms
        assert!((o.time_weighted_mean[0] - (10.0 + 60.0 + 60.0) / 60.0).abs() < 1e-12);
        assert_eq!(o.increase, vec![4.0, 8.0, 0.0]);
    }

    #[test]
    fn unsorted_equals_sorted() {
        let s = [2i64, 1, 1, 2, 1];
        let t = [5i64, 30, 0, -7, 10];
        let v = [7.0, 2.0, 1.0, 4.0, 3.0];
        let o = aggregate(&s, &t, &v, 60).unwrap();
        assert_eq!(o.series, vec![1, 2, 2]);
        assert_eq!(o.window_start, vec![0, -60, 0]);
        assert_eq!(o.first, vec![1.0, 4.0, 7.0]);
    }

    #[test]
    fn counter_reset() {
        let s = [1i64; 5];
        let t = [0i64, 1, 2, 3, 4];
        let v = [10.0, 15.0, 3.0, 5.0, 5.0];
        let o = aggregate(&s, &t, &v, 1000).unwrap();
        assert_eq!(o.increase, vec![5.0 + 3.0 + 2.0]);
    }

    #[test]
    fn errors() {
        assert!(aggregate(&[1], &[1, 2], &[1.0], 10).is_err());
        assert!(aggregate(&[1], &[1], &[1.0], 0).is_err());
        assert!(aggregate(&[1], &[i64::MIN], &[1.0], 7).is_err());
        assert!(aggregate(&[], &[], &[], 10).unwrap().is_empty());
    }
}
