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

/// A set of the statistics `aggregate_stats` computes; `series` and `window_start` always come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats(u16);

impl Stats {
    pub const COUNT: Stats = Stats(1);
    pub const SUM: Stats = Stats(1 << 1);
    pub const MIN: Stats = Stats(1 << 2);
    pub const MAX: Stats = Stats(1 << 3);
    pub const MEAN: Stats = Stats(1 << 4);
    pub const FIRST: Stats = Stats(1 << 5);
    pub const LAST: Stats = Stats(1 << 6);
    pub const TIME_WEIGHTED_MEAN: Stats = Stats(1 << 7);
    pub const INCREASE: Stats = Stats(1 << 8);
    pub const NONE: Stats = Stats(0);
    /// count, sum, min, max, mean, first, last
    pub const BASIC: Stats = Stats((1 << 7) - 1);
    pub const ALL: Stats = Stats((1 << 9) - 1);
    /// Every statistic with its name (the output key), in output order.
    pub const NAMES: [(&'static str, Stats); 9] = [
        ("count", Stats::COUNT),
        ("sum", Stats::SUM),
        ("min", Stats::MIN),
        ("max", Stats::MAX),
        ("mean", Stats::MEAN),
        ("first", Stats::FIRST),
        ("last", Stats::LAST),
        ("time_weighted_mean", Stats::TIME_WEIGHTED_MEAN),
        ("increase", Stats::INCREASE),
    ];

    /// The statistics named (output keys, in any order; repeats allowed).
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Stats> {
        let mut s = Stats::NONE;
        for name in names {
            match Stats::NAMES.iter().find(|(n, _)| *n == name) {
                Some(&(_, bit)) => s = s | bit,
                None => {
                    let known: Vec<&str> = Stats::NAMES.iter().map(|(n, _)| *n).collect();
                    return Err(Error::invalid(format!(
                        "unknown statistic {name:?} (known: {})",
                        known.join(", ")
                    )));
                }
            }
        }
        Ok(s)
    }

    #[inline(always)]
    pub fn contains(self, other: Stats) -> bool {
        self.0 & other.0 == other.0
    }

    /// `Stats(M)`, or `runtime` if `M` is 0 (a set known at compile time folds the tests).
    #[inline(always)]
    fn of<const M: u16>(runtime: Stats) -> Stats {
        if M == 0 {
            runtime
        } else {
            Stats(M)
        }
    }

    /// Whether the time-weighted mean or the increase is asked for (they need more
    /// bookkeeping per reading than the others).
    #[inline(always)]
    fn needs_extra(self) -> bool {
        self.0 & (Stats::TIME_WEIGHTED_MEAN.0 | Stats::INCREASE.0) != 0
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats::ALL
    }
}

impl std::ops::BitOr for Stats {
    type Output = Stats;
    fn bitor(self, o: Stats) -> Stats {
        Stats(self.0 | o.0)
    }
}

/// The windows, one row each, in columns; the columns of statistics not asked for are empty.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AggOut {
    /// the statistics computed (the other columns are empty)
    pub stats: Stats,
    pub series: Column<i64>,
    pub window_start: Column<i64>,
    pub count: Column<i64>,
    pub sum: Column<f64>,
    pub min: Column<f64>,
    pub max: Column<f64>,
    pub mean: Column<f64>,
    pub first: Column<f64>,
    pub last: Column<f64>,
    pub time_weighted_mean: Column<f64>,
    pub increase: Column<f64>,
}

/// An output column: like a `Vec<T>` (`Deref` to a slice), but a large one starts on a
/// huge-page boundary of its allocation and ends its last huge page, every page asked to be
/// a transparent huge page (`madvise(MADV_HUGEPAGE)`, a hint only). The output columns are
/// fresh memory written once: with 4 KiB pages their page faults cost about as much as
/// computing them, and a `Vec` of its own allocation starts and ends inside a huge page, so
/// up to 4 MiB of every column still faulted 4 KiB at a time.
pub struct Column<T> {
    /// the allocation; its own length stays 0 (the rows are `off..off + len` of it)
    buf: Vec<T>,
    off: usize,
    len: usize,
}

const HUGE_PAGE: usize = 2 << 20;

impl<T: Copy> Column<T> {
    pub fn new() -> Self {
        Column {
            buf: Vec::new(),
            off: 0,
            len: 0,
        }
    }

    /// An empty column with room for `n` rows.
    pub fn with_capacity(n: usize) -> Self {
        #[cfg(target_os = "linux")]
        {
            let size = std::mem::size_of::<T>();
            let bytes = n.saturating_mul(size);
            if size > 0 && HUGE_PAGE.is_multiple_of(size) && bytes >= 2 * HUGE_PAGE {
                // room for the rows from the first huge-page boundary to the end of their last
                // huge page; the pages before the boundary are never touched (never backed)
                let buf: Vec<T> = Vec::with_capacity(n + 2 * HUGE_PAGE / size);
                let p = buf.as_ptr() as usize;
                let start = (p + HUGE_PAGE - 1) & !(HUGE_PAGE - 1);
                if (start - p).is_multiple_of(size) {
                    let span = (bytes + HUGE_PAGE - 1) & !(HUGE_PAGE - 1);
                    // SAFETY: [start, start + span) lies inside the allocation (start - p <
                    // HUGE_PAGE, span < bytes + HUGE_PAGE); MADV_HUGEPAGE only changes how the
                    // kernel backs those pages, never their contents.
                    unsafe {
                        libc::madvise(start as *mut libc::c_void, span, libc::MADV_HUGEPAGE);
                    }
                    return Column {
                        buf,
                        off: (start - p) / size,
                        len: 0,
                    };
                }
            }
        }
        Column {
            buf: Vec::with_capacity(n),
            off: 0,
            len: 0,
        }
    }

    fn capacity(&self) -> usize {
        self.buf.capacity() - self.off
    }

    fn grow(&mut self, need: usize) {
        let mut c = Column::with_capacity(need.max(self.len * 2).max(4));
        // SAFETY: `c` has room for `need >= len` rows; the two allocations are distinct
        unsafe {
            std::ptr::copy_nonoverlapping(self.as_ptr(), c.as_mut_ptr(), self.len);
            c.set_len(self.len);
        }
        *self = c;
    }

    #[inline]
    pub fn push(&mut self, x: T) {
        if self.len == self.capacity() {
            self.grow(self.len + 1);
        }
        // SAFETY: `len < capacity`
        unsafe { self.as_mut_ptr().add(self.len).write(x) };
        self.len += 1;
    }

    pub fn extend_from_slice(&mut self, xs: &[T]) {
        if self.len + xs.len() > self.capacity() {
            self.grow(self.len + xs.len());
        }
        // SAFETY: room for `len + xs.len()` rows; `xs` is not this column's memory (`&mut self`)
        unsafe {
            std::ptr::copy_nonoverlapping(xs.as_ptr(), self.as_mut_ptr().add(self.len), xs.len())
        };
        self.len += xs.len();
    }

    /// Pointer to row 0.
    pub fn as_ptr(&self) -> *const T {
        self.buf.as_ptr().wrapping_add(self.off)
    }

    /// Pointer to row 0, for writing rows below the capacity.
    pub fn as_mut_ptr(&mut self) -> *mut T {
        self.buf.as_mut_ptr().wrapping_add(self.off)
    }

    /// # Safety
    /// `n` is at most the capacity and rows `0..n` were written.
    pub unsafe fn set_len(&mut self, n: usize) {
        debug_assert!(n <= self.capacity());
        self.len = n;
    }

    /// The allocation (its own length 0), and where the rows are in it: `off..off + len`;
    /// for handing the memory over without a copy.
    pub fn into_parts(self) -> (Vec<T>, usize, usize) {
        (self.buf, self.off, self.len)
    }

    pub fn into_vec(self) -> Vec<T> {
        if self.off == 0 {
            let (mut buf, len) = (self.buf, self.len);
            // SAFETY: rows `0..len` of the allocation are written
            unsafe { buf.set_len(len) };
            buf
        } else {
            self.to_vec()
        }
    }
}

impl<T: Copy> Default for Column<T> {
    fn default() -> Self {
        Column::new()
    }
}

impl<T: Copy> std::ops::Deref for Column<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: rows `0..len` are written, inside the allocation
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len) }
    }
}

impl<T: Copy> std::ops::DerefMut for Column<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as for `deref`
        unsafe { std::slice::from_raw_parts_mut(self.as_mut_ptr(), self.len) }
    }
}

impl<T: Copy> Clone for Column<T> {
    fn clone(&self) -> Self {
        let mut c = Column::with_capacity(self.len);
        c.extend_from_slice(self);
        c
    }
}

impl<T: Copy + std::fmt::Debug> std::fmt::Debug for Column<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

impl<T: Copy + PartialEq> PartialEq for Column<T> {
    fn eq(&self, o: &Self) -> bool {
        **self == **o
    }
}

impl<T: Copy + PartialEq> PartialEq<Vec<T>> for Column<T> {
    fn eq(&self, o: &Vec<T>) -> bool {
        **self == **o
    }
}

impl<T: Copy> From<Vec<T>> for Column<T> {
    fn from(v: Vec<T>) -> Self {
        let len = v.len();
        let mut buf = v;
        // SAFETY: shortening; the rows stay initialised (and are `Copy`)
        unsafe { buf.set_len(0) };
        Column { buf, off: 0, len }
    }
}

impl AggOut {
    fn with_capacity(n: usize, stats: Stats) -> Self {
        let col = |s: Stats| {
            if stats.contains(s) {
                Column::with_capacity(n)
            } else {
                Column::new()
            }
        };
        AggOut {
            stats,
            series: Column::with_capacity(n),
            window_start: Column::with_capacity(n),
            count: if stats.contains(Stats::COUNT) {
                Column::with_capacity(n)
            } else {
                Column::new()
            },
            sum: col(Stats::SUM),
            min: col(Stats::MIN),
            max: col(Stats::MAX),
            mean: col(Stats::MEAN),
            first: col(Stats::FIRST),
            last: col(Stats::LAST),
            time_weighted_mean: col(Stats::TIME_WEIGHTED_MEAN),
            increase: col(Stats::INCREASE),
        }
    }

    /// Sets the length of every column asked for to `n`.
    ///
    /// # Safety
    /// Rows `0..n` of every such column were written (and `n` is within their capacity).
    unsafe fn set_len(&mut self, n: usize) {
        let st = self.stats;
        unsafe {
            self.series.set_len(n);
            self.window_start.set_len(n);
            if st.contains(Stats::COUNT) {
                self.count.set_len(n);
            }
            for (col, s) in [
                (&mut self.sum, Stats::SUM),
                (&mut self.min, Stats::MIN),
                (&mut self.max, Stats::MAX),
                (&mut self.mean, Stats::MEAN),
                (&mut self.first, Stats::FIRST),
                (&mut self.last, Stats::LAST),
                (&mut self.time_weighted_mean, Stats::TIME_WEIGHTED_MEAN),
                (&mut self.increase, Stats::INCREASE),
            ] {
                if st.contains(s) {
                    col.set_len(n);
                }
            }
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

/// `window_of(t, w)` for a reading at or after `win_end`, the end of the series' previous
/// window (`i128::MIN` if none): without a division when `t` falls in the next window.
#[inline(always)]
fn next_window(t: i64, win_end: i128, w: i64) -> Result<i64> {
    debug_assert!(t as i128 >= win_end);
    if (t as i128) < win_end + w as i128 {
        // win_end <= t, so it is in range, and it is a multiple of w
        Ok(win_end as i64)
    } else {
        window_of(t, w)
    }
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
    /// Window `ws` of `series`, opened by the reading `(t, v)`, which `add` then counts.
    #[inline(always)]
    fn open(series: i64, ws: i64, t: i64, v: f64) -> Acc {
        Acc {
            series,
            ws,
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            first: v,
            last: v,
            last_t: t,
            tw_num: 0.0,
            first_t: t,
            inc: 0.0,
        }
    }

    /// Counts the reading `(t, v)`, whose counter increase is `step`; the time-weighted sum and
    /// the increase only when `X` (some statistic needs them).
    #[inline(always)]
    fn add<const X: bool>(&mut self, t: i64, v: f64, step: f64) {
        self.count += 1;
        self.sum += v;
        self.min = if v < self.min { v } else { self.min };
        self.max = if v > self.max { v } else { self.max };
        if X {
            self.tw_num += self.last * (t - self.last_t) as f64;
            self.inc += step;
        }
        self.last = v;
        self.last_t = t;
    }

    fn flush(&self, w: i64, out: &mut AggOut) {
        let st = out.stats;
        out.series.push(self.series);
        out.window_start.push(self.ws);
        if st.contains(Stats::COUNT) {
            out.count.push(self.count);
        }
        if st.contains(Stats::SUM) {
            out.sum.push(self.sum);
        }
        if st.contains(Stats::MIN) {
            out.min.push(self.min);
        }
        if st.contains(Stats::MAX) {
            out.max.push(self.max);
        }
        if st.contains(Stats::MEAN) {
            out.mean.push(self.mean());
        }
        if st.contains(Stats::FIRST) {
            out.first.push(self.first);
        }
        if st.contains(Stats::LAST) {
            out.last.push(self.last);
        }
        if st.contains(Stats::TIME_WEIGHTED_MEAN) {
            out.time_weighted_mean.push(self.time_weighted_mean(w));
        }
        if st.contains(Stats::INCREASE) {
            out.increase.push(self.inc);
        }
    }

    #[inline(always)]
    fn mean(&self) -> f64 {
        self.sum / self.count as f64
    }

    #[inline(always)]
    fn time_weighted_mean(&self, w: i64) -> f64 {
        // weight of the last reading: until the window ends (ws <= first_t <= last_t < ws + w)
        let tw_num = self.tw_num + self.last * (w - (self.last_t - self.ws)) as f64;
        let span = (w - (self.first_t - self.ws)) as f64;
        if span > 0.0 {
            tw_num / span
        } else {
            self.last
        }
    }
}

/// Aggregates rows `(series[i], timestamps[i], values[i])` into tumbling windows of
/// `window_ms` milliseconds, every statistic. Rows may come in any order.
pub fn aggregate(
    series: &[i64],
    timestamps: &[i64],
    values: &[f64],
    window_ms: i64,
) -> Result<AggOut> {
    aggregate_stats(series, timestamps, values, window_ms, Stats::ALL)
}

/// `aggregate` computing only the statistics in `stats` (the other columns stay empty); the
/// columns computed are bit for bit those of `aggregate`.
pub fn aggregate_stats(
    series: &[i64],
    timestamps: &[i64],
    values: &[f64],
    window_ms: i64,
    stats: Stats,
) -> Result<AggOut> {
    let n = series.len();
    if timestamps.len() != n || values.len() != n {
        return Err(Error::invalid(format!(
            "series, timestamps and values must have the same length ({n}, {}, {})",
            timestamps.len(),
            values.len()
        )));
    }
    if window_ms <= 0 {
        return Err(Error::invalid(format!(
            "window_ms must be positive, got {window_ms}"
        )));
    }
    if n > u32::MAX as usize {
        return Err(Error::invalid("too many rows (more than 2^32)"));
    }
    let mut threads = if n >= 200_000 {
        std::thread::available_parallelism()
            .map_or(1, |p| p.get())
            .min(4)
    } else {
        1
    };
    if threads > 1 && windows_bound(series, timestamps, window_ms).is_some_and(|b| b * 4 > n) {
        // about as many windows as rows: the output dominates; count the windows first so
        // that each thread writes its windows in place instead of into its own columns
        if let Some(out) =
            aggregate_sorted_in_place(series, timestamps, values, window_ms, threads, stats)?
        {
            return Ok(out);
        }
        threads = 1;
    }
    // Rows usually come sorted by (series, time): aggregate them as they are, in chunks cut at
    // series boundaries, one thread a chunk; any row out of order sends us to the general path.
    let cuts = chunk_cuts(series, threads);
    let parts: Vec<Result<Option<AggOut>>> = parallel_chunks(&cuts, |a, b| {
        aggregate_if_sorted(
            &series[a..b],
            &timestamps[a..b],
            &values[a..b],
            window_ms,
            stats,
        )
    });
    let boundaries_sorted = cuts
        .windows(2)
        .skip(1)
        .all(|c| c[0] == 0 || series[c[0] - 1] < series[c[0]]);
    let mut outs = Vec::with_capacity(parts.len());
    let mut all_sorted = boundaries_sorted;
    for p in parts {
        match p? {
            Some(o) => outs.push(o),
            None => all_sorted = false,
        }
    }
    if all_sorted {
        return Ok(concat(outs, stats));
    }
    let (mut ts, mut vs, mut dense) = SCRATCH.with(|c| std::mem::take(&mut *c.borrow_mut()));
    if let Some(out) = aggregate_streaming(
        series, timestamps, values, window_ms, threads, stats, LINES_MIN,
    )? {
        if ts.capacity() <= 1 << 18 {
            SCRATCH.with(|c| *c.borrow_mut() = (ts, vs, dense));
        }
        return Ok(out);
    }
    let (groups, ids) = group_rows(series, timestamps, values, &mut ts, &mut vs, &mut dense);
    // cut the groups into chunks of about the same number of rows
    let mut gcuts = vec![0usize];
    for k in 1..threads {
        let target = n * k / threads;
        let g = groups
            .partition_point(|&start| start < target)
            .min(ids.len());
        if g > *gcuts.last().unwrap() {
            gcuts.push(g);
        }
    }
    gcuts.push(ids.len());
    let parts = parallel_chunks(&gcuts, |ga, gb| {
        let mut bound = 0usize;
        for g in ga..gb {
            let (a, b) = (groups[g], groups[g + 1]);
            let spanned =
                (ts[b - 1].div_euclid(window_ms) as i128 - ts[a].div_euclid(window_ms) as i128 + 1)
                    .max(1);
            bound += spanned.min((b - a) as i128) as usize;
        }
        let mut out = AggOut::with_capacity(bound, stats);
        for g in ga..gb {
            let (a, b) = (groups[g], groups[g + 1]);
            aggregate_series(ids[g], &ts[a..b], &vs[a..b], window_ms, stats, &mut out)?;
        }
        Ok(Some(out))
    });
    // keep the regrouping buffers for the next call (their pages stay mapped), unless huge
    if ts.capacity() <= 1 << 18 {
        SCRATCH.with(|c| *c.borrow_mut() = (ts, vs, dense));
    }
    let mut outs = Vec::with_capacity(parts.len());
    for p in parts {
        outs.extend(p?);
    }
    Ok(concat(outs, stats))
}

thread_local! {
    /// Regrouping buffers reused from call to call (timestamps, values, dense series ids), kept
    /// only while small (at most 2^18 rows, 5 MiB), so that a gateway does not hold on to them.
    static SCRATCH: std::cell::RefCell<(Vec<i64>, Vec<f64>, Vec<u32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// Upper bound of the windows of rows sorted by (series, time), `None` if they are not sorted
/// by series (time order is not checked here).
fn windows_bound(series: &[i64], ts: &[i64], w: i64) -> Option<usize> {
    let mut bound = 0usize;
    for (sid, start, end) in series_runs(series) {
        if end < series.len() && series[end] < sid {
            return None;
        }
        let spanned =
            (ts[end - 1].div_euclid(w) as i128 - ts[start].div_euclid(w) as i128 + 1).max(1);
        bound += spanned.min((end - start) as i128) as usize;
    }
    Some(bound)
}

/// The runs of equal ids in `series`, in order: `(id, start, end)`.
fn series_runs(series: &[i64]) -> impl Iterator<Item = (i64, usize, usize)> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        let sid = *series.get(start)?;
        let mut end = start + 1;
        while end < series.len() && series[end] == sid {
            end += 1;
        }
        let run = (sid, start, end);
        start = end;
        Some(run)
    })
}

/// Cuts `0..n` into about `parts` chunks, each cut placed where the series changes.
fn chunk_cuts(series: &[i64], parts: usize) -> Vec<usize> {
    let n = series.len();
    let mut cuts = vec![0usize];
    for k in 1..parts {
        let mut c = (n * k / parts).max(*cuts.last().unwrap());
        while c < n && c > 0 && series[c] == series[c - 1] {
            c += 1;
        }
        if c > *cuts.last().unwrap() && c < n {
            cuts.push(c);
        }
    }
    cuts.push(n);
    cuts
}

fn concat(mut outs: Vec<AggOut>, stats: Stats) -> AggOut {
    if outs.len() == 1 {
        return outs.pop().unwrap();
    }
    let total: usize = outs.iter().map(|o| o.len()).sum();
    let mut all = AggOut::with_capacity(total, stats);
    for o in outs {
        all.series.extend_from_slice(&o.series);
        all.window_start.extend_from_slice(&o.window_start);
        all.count.extend_from_slice(&o.count);
        all.sum.extend_from_slice(&o.sum);
        all.min.extend_from_slice(&o.min);
        all.max.extend_from_slice(&o.max);
        all.mean.extend_from_slice(&o.mean);
        all.first.extend_from_slice(&o.first);
        all.last.extend_from_slice(&o.last);
        all.time_weighted_mean
            .extend_from_slice(&o.time_weighted_mean);
        all.increase.extend_from_slice(&o.increase);
    }
    all
}

/// Where `aggregate_series` puts a finished window.
trait Sink {
    fn put(&mut self, acc: &Acc, w: i64);
}

impl Sink for AggOut {
    #[inline]
    fn put(&mut self, acc: &Acc, w: i64) {
        acc.flush(w, self);
    }
}

/// Writes windows at rows `at..end` of preallocated columns.
struct InPlace {
    o: OutPtrs,
    at: usize,
    end: usize,
}

impl Sink for InPlace {
    #[inline]
    fn put(&mut self, acc: &Acc, w: i64) {
        assert!(self.at < self.end, "more windows than counted");
        // SAFETY: `at < end`, and the range `at..end` is within the columns' capacity and
        // written by this sink only
        unsafe { acc.flush_at::<0>(w, self.o, self.at) };
        self.at += 1;
    }
}

/// The exact number of windows `aggregate_series` makes from rows sorted by (series, time);
/// `None` if some series goes back in time.
fn count_windows_sorted(series: &[i64], ts: &[i64], vs: &[f64], w: i64) -> Result<Option<usize>> {
    let mut count = 0usize;
    for (_, start, end) in series_runs(series) {
        if ts[start..end].windows(2).any(|p| p[1] < p[0]) {
            return Ok(None);
        }
        let mut win_end = i128::MIN;
        for j in start..end {
            if vs[j].is_nan() {
                continue;
            }
            let t = ts[j];
            if (t as i128) >= win_end {
                win_end = next_window(t, win_end, w)? as i128 + w as i128;
                count += 1;
            }
        }
    }
    Ok(Some(count))
}

/// Rows sorted by (series, time) with about as many windows as rows, on several threads: the
/// windows of each chunk (cut at series boundaries) are counted, then each chunk writes its
/// windows at their final rows of one set of columns. `None` if the rows are not sorted.
fn aggregate_sorted_in_place(
    series: &[i64],
    ts: &[i64],
    vs: &[f64],
    w: i64,
    threads: usize,
    stats: Stats,
) -> Result<Option<AggOut>> {
    let n = series.len();
    let cuts = chunk_cuts(series, threads);
    let chunks = cuts.len() - 1;
    if (1..chunks).any(|c| series[cuts[c] - 1] >= series[cuts[c]]) {
        return Ok(None);
    }
    let counts: Vec<Result<Option<usize>>> = parallel_chunks(&cuts, |a, b| {
        count_windows_sorted(&series[a..b], &ts[a..b], &vs[a..b], w)
    });
    let mut offsets = vec![0usize];
    for c in counts {
        match c? {
            Some(k) => offsets.push(offsets.last().unwrap() + k),
            None => return Ok(None),
        }
    }
    let total = *offsets.last().unwrap();
    let mut out = AggOut::with_capacity(total, stats);
    let o = OutPtrs::of(&mut out);
    let written: Vec<Result<bool>> = parallel_chunks(&cuts, |a, b| {
        let c = cuts.partition_point(|&x| x < a);
        let mut sink = InPlace {
            o,
            at: offsets[c],
            end: offsets[c + 1],
        };
        for (sid, start, end) in series_runs(&series[a..b]) {
            let (start, end) = (a + start, a + end);
            if !aggregate_series(sid, &ts[start..end], &vs[start..end], w, stats, &mut sink)? {
                return Ok(false);
            }
        }
        Ok(sink.at == sink.end)
    });
    for r in written {
        if !r? {
            return Err(Error::invalid("aggregation: window count mismatch"));
        }
    }
    debug_assert!(n >= total);
    // SAFETY: every chunk `c` wrote all the rows `offsets[c]..offsets[c + 1]` (checked just
    // above), and these ranges tile `0..total`.
    unsafe { out.set_len(total) };
    Ok(Some(out))
}

/// Runs `f(cut[i], cut[i + 1])` for every chunk, on scoped threads when there are several.
///
/// A worker that panicked yields an error rather than a panic, so that none can cross into
/// Python.
fn parallel_chunks<T: Send, F>(cuts: &[usize], f: F) -> Vec<Result<T>>
where
    F: Fn(usize, usize) -> Result<T> + Sync,
{
    if cuts.len() <= 2 {
        return vec![f(cuts[0], cuts[cuts.len() - 1])];
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = cuts
            .windows(2)
            .skip(1)
            .map(|c| {
                let f = &f;
                let (a, b) = (c[0], c[1]);
                scope.spawn(move || f(a, b))
            })
            .collect();
        let mut res = vec![f(cuts[0], cuts[1])];
        for h in handles {
            res.push(
                h.join()
                    .unwrap_or_else(|_| Err(Error::invalid("aggregation worker failed"))),
            );
        }
        res
    })
}

/// Aggregates rows already sorted by (series, time); `None` as soon as a row is out of order.
fn aggregate_if_sorted(
    series: &[i64],
    ts: &[i64],
    vs: &[f64],
    w: i64,
    stats: Stats,
) -> Result<Option<AggOut>> {
    // an upper bound of the windows, so that the output never grows by reallocation
    let Some(bound) = windows_bound(series, ts, w) else {
        return Ok(None);
    };
    let mut out = AggOut::with_capacity(bound, stats);
    // (`windows_bound` found the series in increasing order)
    for (sid, start, end) in series_runs(series) {
        if !aggregate_series(sid, &ts[start..end], &vs[start..end], w, stats, &mut out)? {
            return Ok(None);
        }
    }
    Ok(Some(out))
}

/// Rows regrouped by series (in increasing series order) with a stable counting sort, each
/// series' rows then in time order (ties kept in input order): returns the group boundaries,
/// the series ids and the regrouped timestamps and values.
fn group_rows(
    series: &[i64],
    timestamps: &[i64],
    values: &[f64],
    ts: &mut Vec<i64>,
    vs: &mut Vec<f64>,
    dense: &mut Vec<u32>,
) -> (Vec<usize>, Vec<i64>) {
    let n = series.len();
    let ids = dense_ids(series, dense);
    let groups = ids.len();
    let mut start = vec![0usize; groups + 1];
    for &g in dense.iter() {
        start[g as usize + 1] += 1;
    }
    for g in 0..groups {
        start[g + 1] += start[g];
    }
    let mut fill = start.clone();
    ts.clear();
    ts.resize(n, 0);
    vs.clear();
    vs.resize(n, 0.0);
    for i in 0..n {
        let g = dense[i] as usize;
        let at = fill[g];
        ts[at] = timestamps[i];
        vs[at] = values[i];
        fill[g] = at + 1;
    }
    for g in 0..groups {
        let (a, b) = (start[g], start[g + 1]);
        if !ts[a..b].windows(2).all(|w| w[0] <= w[1]) {
            let mut rows: Vec<(i64, f64)> = ts[a..b]
                .iter()
                .copied()
                .zip(vs[a..b].iter().copied())
                .collect();
            rows.sort_by_key(|r| r.0); // stable: ties keep input order
            for (k, (t, v)) in rows.into_iter().enumerate() {
                ts[a + k] = t;
                vs[a + k] = v;
            }
        }
    }
    (start, ids)
}

/// How rows' series ids map to their numbers `0..` (in increasing id order).
enum Numbering {
    /// ids in `lo..lo + slot.len()`: number of id `x` is `slot[x - lo]`
    Dense {
        lo: i64,
        slot: Vec<u32>,
    },
    Sparse(std::collections::HashMap<i64, u32>),
}

/// Numbers the distinct series `0..` in increasing order; returns the numbering and the series
/// ids by number.
fn number_series(series: &[i64], threads: usize) -> (Numbering, Vec<i64>) {
    let n = series.len();
    if n == 0 {
        return (
            Numbering::Dense {
                lo: 0,
                slot: Vec::new(),
            },
            Vec::new(),
        );
    }
    // both passes over the rows on `threads` threads (each part marks the ids it has)
    let parts = threads.clamp(1, n);
    let cuts: Vec<usize> = (0..=parts).map(|p| n * p / parts).collect();
    let (lo, hi) = parallel_chunks(&cuts, |a, b| {
        Ok(series[a..b]
            .iter()
            .fold((i64::MAX, i64::MIN), |(a, b), &x| (a.min(x), b.max(x))))
    })
    .into_iter()
    .flatten()
    .fold((i64::MAX, i64::MIN), |(a, b), (x, y)| (a.min(x), b.max(y)));
    let span = (hi as i128 - lo as i128 + 1) as u128;
    if span <= (n as u128).max(1 << 16) * 4 {
        let span = span as usize;
        let marks = parallel_chunks(&cuts, |a, b| {
            let mut m = vec![false; span];
            for &x in &series[a..b] {
                m[(x - lo) as usize] = true;
            }
            Ok(m)
        });
        let mut slot = vec![u32::MAX; span];
        for m in marks.into_iter().flatten() {
            for (s, seen) in slot.iter_mut().zip(m) {
                if seen {
                    *s = 0;
                }
            }
        }
        let mut ids = Vec::new();
        for (k, p) in slot.iter_mut().enumerate() {
            if *p == 0 {
                *p = ids.len() as u32;
                ids.push(lo + k as i64);
            }
        }
        (Numbering::Dense { lo, slot }, ids)
    } else {
        let mut ids: Vec<i64> = series.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let map = ids
            .iter()
            .enumerate()
            .map(|(i, &x)| (x, i as u32))
            .collect();
        (Numbering::Sparse(map), ids)
    }
}

/// Fills `dense` with each row's series number and returns the series ids by number.
fn dense_ids(series: &[i64], dense: &mut Vec<u32>) -> Vec<i64> {
    let (numbering, ids) = number_series(series, 1);
    dense.clear();
    match &numbering {
        Numbering::Dense { lo, slot } => {
            dense.extend(series.iter().map(|&x| slot[(x - lo) as usize]))
        }
        Numbering::Sparse(m) => dense.extend(series.iter().map(|x| m[x])),
    }
    ids
}

/// Raw pointers to the output columns, written at disjoint rows by several threads.
#[derive(Clone, Copy)]
struct OutPtrs {
    stats: Stats,
    /// the interleaved path gathers whole lines and writes them with non-temporal stores
    lines: bool,
    series: *mut i64,
    window_start: *mut i64,
    count: *mut i64,
    sum: *mut f64,
    min: *mut f64,
    max: *mut f64,
    mean: *mut f64,
    first: *mut f64,
    last: *mut f64,
    time_weighted_mean: *mut f64,
    increase: *mut f64,
}

// SAFETY: every thread writes rows no other thread writes (the rows of its own series).
unsafe impl Send for OutPtrs {}
unsafe impl Sync for OutPtrs {}

impl OutPtrs {
    /// Asks for the cache lines of row `at` of every column written, ahead of the writes (a
    /// hint, never a fault): when the series are interleaved, each series writes its own rows
    /// of every column, too many streams for the hardware prefetcher, so each new line of
    /// fresh output would otherwise stall the writes.
    #[inline(always)]
    fn prefetch<const M: u16>(&self, at: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let st = Stats::of::<M>(self.stats);
            let pf = |p: *const i8| {
                // SAFETY: a prefetch is only a hint; it never faults, whatever the address
                unsafe { _mm_prefetch::<_MM_HINT_T0>(p) }
            };
            pf(self.series.wrapping_add(at) as *const i8);
            pf(self.window_start.wrapping_add(at) as *const i8);
            if st.contains(Stats::COUNT) {
                pf(self.count.wrapping_add(at) as *const i8);
            }
            for (c, s) in [
                (self.sum, Stats::SUM),
                (self.min, Stats::MIN),
                (self.max, Stats::MAX),
                (self.mean, Stats::MEAN),
                (self.first, Stats::FIRST),
                (self.last, Stats::LAST),
                (self.time_weighted_mean, Stats::TIME_WEIGHTED_MEAN),
                (self.increase, Stats::INCREASE),
            ] {
                if st.contains(s) {
                    pf(c.wrapping_add(at) as *const i8);
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = at;
    }

    fn of(out: &mut AggOut) -> Self {
        OutPtrs {
            stats: out.stats,
            lines: false,
            series: out.series.as_mut_ptr(),
            window_start: out.window_start.as_mut_ptr(),
            count: out.count.as_mut_ptr(),
            sum: out.sum.as_mut_ptr(),
            min: out.min.as_mut_ptr(),
            max: out.max.as_mut_ptr(),
            mean: out.mean.as_mut_ptr(),
            first: out.first.as_mut_ptr(),
            last: out.last.as_mut_ptr(),
            time_weighted_mean: out.time_weighted_mean.as_mut_ptr(),
            increase: out.increase.as_mut_ptr(),
        }
    }
}

/// The output columns in `OutPtrs` order, with the statistic each holds (`NONE`: always).
const COLUMN_STATS: [Stats; 11] = [
    Stats::NONE,
    Stats::NONE,
    Stats::COUNT,
    Stats::SUM,
    Stats::MIN,
    Stats::MAX,
    Stats::MEAN,
    Stats::FIRST,
    Stats::LAST,
    Stats::TIME_WEIGHTED_MEAN,
    Stats::INCREASE,
];

impl OutPtrs {
    /// Every column as 8-byte words, in `COLUMN_STATS` order.
    #[inline(always)]
    fn words(&self) -> [*mut u64; 11] {
        [
            self.series as *mut u64,
            self.window_start as *mut u64,
            self.count as *mut u64,
            self.sum as *mut u64,
            self.min as *mut u64,
            self.max as *mut u64,
            self.mean as *mut u64,
            self.first as *mut u64,
            self.last as *mut u64,
            self.time_weighted_mean as *mut u64,
            self.increase as *mut u64,
        ]
    }
}

/// Eight rows (one 64-byte line) of every column, gathered before they are written.
type Lines = [[u64; 8]; 11];

/// Writes rows `lo..hi` (within one line starting at row `line`) of every column asked for
/// from `buf`, with plain stores.
///
/// # Safety
/// As `Acc::flush_at` for each row.
#[inline(always)]
unsafe fn write_rows(st: Stats, o: OutPtrs, buf: &Lines, line: usize, lo: usize, hi: usize) {
    let cols = o.words();
    for c in 0..11 {
        if asked(st, c) {
            for r in lo..hi {
                // SAFETY: as for `flush_at`
                unsafe { cols[c].add(r).write(buf[c][r - line]) };
            }
        }
    }
}

/// Writes the whole line of rows `line..line + 8` of every column asked for from `buf`, with
/// non-temporal stores (no read of the line before it is written, which for fresh output
/// lines written by many interleaved series costs a memory round trip each).
///
/// # Safety
/// As `Acc::flush_at` for each row; an `_mm_sfence` must follow before the rows are read.
#[inline(always)]
unsafe fn stream_line(st: Stats, o: OutPtrs, buf: &Lines, line: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let cols = o.words();
        for c in 0..11 {
            if asked(st, c) {
                for (j, &x) in buf[c].iter().enumerate() {
                    // SAFETY: as for `flush_at`
                    unsafe {
                        std::arch::x86_64::_mm_stream_si64(
                            cols[c].add(line + j) as *mut i64,
                            x as i64,
                        )
                    };
                }
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // (elsewhere, plain stores)
        // SAFETY: as for this function
        unsafe { write_rows(st, o, buf, line, line, line + 8) };
    }
}

/// Whether column `c` (in `COLUMN_STATS` order) is written for the statistics `st`.
#[inline(always)]
fn asked(st: Stats, c: usize) -> bool {
    COLUMN_STATS[c] == Stats::NONE || st.contains(COLUMN_STATS[c])
}

impl Acc {
    /// The window's row of every column as 8-byte words (`COLUMN_STATS` order); the columns
    /// not in `st` are 0.
    #[inline(always)]
    fn words(&self, w: i64, st: Stats) -> [u64; 11] {
        let f = |s: Stats, x: f64| if st.contains(s) { x.to_bits() } else { 0 };
        [
            self.series as u64,
            self.ws as u64,
            self.count as u64,
            f(Stats::SUM, self.sum),
            f(Stats::MIN, self.min),
            f(Stats::MAX, self.max),
            if st.contains(Stats::MEAN) {
                self.mean().to_bits()
            } else {
                0
            },
            f(Stats::FIRST, self.first),
            f(Stats::LAST, self.last),
            if st.contains(Stats::TIME_WEIGHTED_MEAN) {
                self.time_weighted_mean(w).to_bits()
            } else {
                0
            },
            f(Stats::INCREASE, self.inc),
        ]
    }

    /// `flush` writing row `at` in place.
    ///
    /// # Safety
    /// `at` is below the capacity of every column behind `o`, and no other thread writes it.
    #[inline]
    unsafe fn flush_at<const M: u16>(&self, w: i64, o: OutPtrs, at: usize) {
        let st = Stats::of::<M>(o.stats);
        // SAFETY: the columns not asked for (dangling pointers) are never written
        unsafe {
            o.series.add(at).write(self.series);
            o.window_start.add(at).write(self.ws);
            if st.contains(Stats::COUNT) {
                o.count.add(at).write(self.count);
            }
            if st.contains(Stats::SUM) {
                o.sum.add(at).write(self.sum);
            }
            if st.contains(Stats::MIN) {
                o.min.add(at).write(self.min);
            }
            if st.contains(Stats::MAX) {
                o.max.add(at).write(self.max);
            }
            if st.contains(Stats::MEAN) {
                o.mean.add(at).write(self.mean());
            }
            if st.contains(Stats::FIRST) {
                o.first.add(at).write(self.first);
            }
            if st.contains(Stats::LAST) {
                o.last.add(at).write(self.last);
            }
            if st.contains(Stats::TIME_WEIGHTED_MEAN) {
                o.time_weighted_mean
                    .add(at)
                    .write(self.time_weighted_mean(w));
            }
            if st.contains(Stats::INCREASE) {
                o.increase.add(at).write(self.inc);
            }
        }
    }
}

/// What the first pass over rows in time order learns about one part (a range of rows), for
/// each series number `k`.
struct PartScan {
    /// windows of the series in the part
    nwin: Vec<u32>,
    /// start of the first and of the last of them
    first_ws: Vec<i64>,
    last_ws: Vec<i64>,
    /// earliest and latest timestamps of the series' rows in the part (NaN values included;
    /// `i64::MAX`, `i64::MIN` if none)
    lo_t: Vec<i64>,
    hi_t: Vec<i64>,
}

/// First pass over rows in time order: counts each series' windows; `None` if some series
/// goes back in time.
fn scan_part(
    series: &[i64],
    ts: &[i64],
    vs: &[f64],
    w: i64,
    numbering: &Numbering,
    g: usize,
) -> Result<Option<PartScan>> {
    match numbering {
        Numbering::Dense { lo, slot } => {
            scan_part_by(series, ts, vs, w, g, |x| slot[(x - lo) as usize])
        }
        Numbering::Sparse(m) => scan_part_by(series, ts, vs, w, g, |x| m[&x]),
    }
}

/// Per series, in one cache line.
#[derive(Clone, Copy)]
struct ScanSlot {
    win_end: i128,
    hi_t: i64,
    lo_t: i64,
    first_ws: i64,
    nwin: u32,
}

#[inline(always)]
fn scan_part_by(
    series: &[i64],
    ts: &[i64],
    vs: &[f64],
    w: i64,
    g: usize,
    number: impl Fn(i64) -> u32,
) -> Result<Option<PartScan>> {
    let mut st = vec![
        ScanSlot {
            win_end: i128::MIN,
            hi_t: i64::MIN,
            lo_t: i64::MAX,
            first_ws: 0,
            nwin: 0,
        };
        g
    ];
    for ((&x, &t), &v) in series.iter().zip(ts).zip(vs) {
        let e = &mut st[number(x) as usize];
        if t < e.hi_t {
            return Ok(None);
        }
        e.hi_t = t;
        e.lo_t = e.lo_t.min(t);
        if v.is_nan() {
            continue;
        }
        if (t as i128) >= e.win_end {
            let ws = next_window(t, e.win_end, w)?;
            e.win_end = ws as i128 + w as i128;
            if e.nwin == 0 {
                e.first_ws = ws;
            }
            e.nwin += 1;
        }
    }
    Ok(Some(PartScan {
        nwin: st.iter().map(|e| e.nwin).collect(),
        first_ws: st.iter().map(|e| e.first_ws).collect(),
        last_ws: st
            .iter()
            .map(|e| {
                if e.win_end == i128::MIN {
                    0
                } else {
                    (e.win_end - w as i128) as i64
                }
            })
            .collect(),
        lo_t: st.iter().map(|e| e.lo_t).collect(),
        hi_t: st.iter().map(|e| e.hi_t).collect(),
    }))
}

/// Where each part writes the windows of each series, from the first pass over every part.
///
/// The first window of series `k` in part `p` is *deferred* when an earlier part has windows
/// of `k`: its rows in part `p` (those before the end of that window) are aggregated by the
/// part that has the series' previous window, the *owner*, which continues past its own rows
/// (the window may be the one it left open, or a new one); so every window is aggregated by
/// one thread, from its readings in order, as on one thread.
struct Layout {
    /// `deferred[p][k]`
    deferred: Vec<Vec<bool>>,
    /// `start[p][k]..end[p][k]`: the output rows part `p` writes for series `k` (its own
    /// windows, then those made of later parts' deferred rows)
    start: Vec<Vec<usize>>,
    end: Vec<Vec<usize>>,
    /// `continues[p][k]`: part `p` owns series `k` at its end and a later part has windows
    /// of `k` (so part `p` continues into their deferred rows)
    continues: Vec<Vec<bool>>,
    total: usize,
}

/// `None` if some series goes back in time across parts.
fn layout(scans: &[PartScan], g: usize) -> Option<Layout> {
    let parts = scans.len();
    let mut deferred = vec![vec![false; g]; parts];
    let mut start = vec![vec![0usize; g]; parts];
    let mut end = vec![vec![0usize; g]; parts];
    let mut continues = vec![vec![false; g]; parts];
    let mut pos = 0usize;
    for k in 0..g {
        let mut hi = i64::MIN;
        for sc in scans {
            if sc.hi_t[k] != i64::MIN || sc.lo_t[k] != i64::MAX {
                if sc.lo_t[k] < hi {
                    return None;
                }
                hi = sc.hi_t[k];
            }
        }
        let mut distinct = 0usize; // windows of `k` in parts before `p`
        let mut last_ws: Option<i64> = None;
        let mut owner: Option<usize> = None;
        for (p, sc) in scans.iter().enumerate() {
            let nw = sc.nwin[k] as usize;
            if nw == 0 {
                continue;
            }
            let is_deferred = last_ws.is_some();
            deferred[p][k] = is_deferred;
            if let Some(o) = owner {
                continues[o][k] = true;
            }
            // the deferred window is the one the owner has open, or a new one after it
            let merged = last_ws == Some(sc.first_ws[k]);
            let own_from = distinct + usize::from(is_deferred && !merged);
            distinct += nw - usize::from(merged);
            if nw > usize::from(is_deferred) {
                if let Some(o) = owner {
                    end[o][k] = pos + own_from;
                }
                start[p][k] = pos + own_from;
                owner = Some(p);
            }
            last_ws = Some(sc.last_ws[k]);
        }
        if let Some(o) = owner {
            end[o][k] = pos + distinct;
        }
        pos += distinct;
    }
    Some(Layout {
        deferred,
        start,
        end,
        continues,
        total: pos,
    })
}

/// Outputs of at least this many rows (columns of 4 MiB) on the interleaved path are written
/// by whole lines with non-temporal stores: written by many series at once, their fresh lines
/// would each be read from memory before being written.
const LINES_MIN: usize = 1 << 19;

/// How many rows ahead of its writes a series prefetches its output lines.
const PREFETCH_AHEAD: usize = 32;

/// Rows whose series are interleaved but each in time order (an ingest batch), second pass
/// over the rows of part `p` (`cuts[p]..cuts[p + 1]`): a running window per series, each
/// window written at its final row; then, for the series it owns at its end, the deferred
/// rows of the later parts.
#[allow(clippy::too_many_arguments)]
fn streaming_part<const X: bool, const M: u16>(
    series: &[i64],
    ts: &[i64],
    vs: &[f64],
    w: i64,
    numbering: &Numbering,
    ids: &[i64],
    scans: &[PartScan],
    lay: &Layout,
    cuts: &[usize],
    p: usize,
    out: OutPtrs,
) -> Result<()> {
    match numbering {
        Numbering::Dense { lo, slot } => streaming_part_by::<X, M>(
            series,
            ts,
            vs,
            w,
            |x| slot[(x - lo) as usize],
            ids,
            scans,
            lay,
            cuts,
            p,
            out,
        ),
        Numbering::Sparse(m) => {
            streaming_part_by::<X, M>(series, ts, vs, w, |x| m[&x], ids, scans, lay, cuts, p, out)
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn streaming_part_by<const X: bool, const M: u16>(
    series: &[i64],
    ts: &[i64],
    vs: &[f64],
    w: i64,
    number: impl Fn(i64) -> u32,
    ids: &[i64],
    scans: &[PartScan],
    lay: &Layout,
    cuts: &[usize],
    p: usize,
    out: OutPtrs,
) -> Result<()> {
    struct State {
        acc: Acc,
        /// end of the open window (`i128::MIN`: none open, every reading takes the slow path)
        win_end: i128,
        /// readings before this time are deferred (belong to an earlier part's window)
        defer_end: i128,
        prev: f64,
        open: bool,
        /// this part's rows of the series: `from..end`, the next one written `at`
        from: usize,
        at: usize,
        end: usize,
    }
    let parts = cuts.len() - 1;
    let mut st: Vec<State> = ids
        .iter()
        .enumerate()
        .map(|(k, &sid)| State {
            acc: Acc {
                series: sid,
                ws: 0,
                count: 0,
                sum: 0.0,
                min: 0.0,
                max: 0.0,
                first: 0.0,
                last: 0.0,
                last_t: 0,
                tw_num: 0.0,
                first_t: 0,
                inc: 0.0,
            },
            win_end: i128::MIN,
            defer_end: if lay.deferred[p][k] {
                scans[p].first_ws[k] as i128 + w as i128
            } else {
                i128::MIN
            },
            prev: f64::NAN,
            open: false,
            from: lay.start[p][k],
            at: lay.start[p][k],
            end: lay.end[p][k],
        })
        .collect();
    // each series gathers its rows line by line and writes whole lines with non-temporal
    // stores, for large outputs (unless there are many series: 704 bytes each)
    let mut lines: Vec<Lines> = if out.lines && ids.len() <= 1 << 14 {
        vec![[[0u64; 8]; 11]; ids.len()]
    } else {
        Vec::new()
    };
    /// Writes the open window of `s` at its next row.
    #[inline(always)]
    fn emit<const M: u16>(
        s: &mut State,
        line: Option<&mut Lines>,
        w: i64,
        out: OutPtrs,
    ) -> Result<()> {
        if s.at >= s.end {
            return Err(Error::invalid("aggregation: window count mismatch"));
        }
        let st = Stats::of::<M>(out.stats);
        match line {
            Some(buf) => {
                let vals = s.acc.words(w, st);
                let slot = s.at % 8;
                for c in 0..11 {
                    buf[c][slot] = vals[c];
                }
                if slot == 7 {
                    let l = s.at - 7;
                    // SAFETY: rows `from..end` of series `k` are below the columns' capacity
                    // and written by this part only; a whole line is written only if all its
                    // rows are this part's
                    unsafe {
                        if l >= s.from {
                            stream_line(st, out, buf, l)
                        } else {
                            write_rows(st, out, buf, l, s.from, l + 8)
                        }
                    }
                }
            }
            None => {
                // SAFETY: `at < end`, and rows `from..end` of series `k` are below the
                // columns' capacity and written by this part only
                unsafe { s.acc.flush_at::<M>(w, out, s.at) };
                if (s.at + 1).is_multiple_of(8) {
                    out.prefetch::<M>(s.at + 1 + PREFETCH_AHEAD);
                }
            }
        }
        s.at += 1;
        Ok(())
    }
    /// Adds reading `(t, v)` to the running window of `s` (flushing the previous window
    /// when `t` is past its end).
    #[inline(always)]
    fn add<const X: bool, const M: u16>(
        s: &mut State,
        line: Option<&mut Lines>,
        t: i64,
        v: f64,
        w: i64,
        out: OutPtrs,
    ) -> Result<()> {
        let step = if !X || s.prev.is_nan() {
            0.0
        } else {
            let d = v - s.prev;
            if d >= 0.0 {
                d
            } else {
                v
            }
        };
        s.prev = v;
        if (t as i128) >= s.win_end {
            if s.open {
                emit::<M>(s, line, w, out)?;
            }
            let ws = next_window(t, s.win_end, w)?;
            s.win_end = ws as i128 + w as i128;
            s.open = true;
            s.acc = Acc::open(s.acc.series, ws, t, v);
        }
        s.acc.add::<X>(t, v, step);
        Ok(())
    }
    for i in cuts[p]..cuts[p + 1] {
        let v = vs[i];
        if v.is_nan() {
            continue;
        }
        let k = number(series[i]) as usize;
        let t = ts[i];
        let s = &mut st[k];
        if (t as i128) < s.defer_end {
            // an earlier part's window: that part aggregates it
            s.prev = v;
            continue;
        }
        add::<X, M>(s, lines.get_mut(k), t, v, w, out)?;
    }
    // the later parts' deferred rows of the series this part owns at its end
    let cont = &lay.continues[p];
    let mut pending: usize = cont.iter().filter(|&&c| c).count();
    let mut q = p + 1;
    let mut i = cuts[p + 1];
    while pending > 0 && i < series.len() {
        while i >= cuts[q + 1] {
            q += 1;
        }
        let (a, b) = (i, cuts[q + 1]);
        let (sq, dq) = (&scans[q], &lay.deferred[q]);
        for j in a..b {
            let v = vs[j];
            if v.is_nan() {
                continue;
            }
            let k = number(series[j]) as usize;
            let s = &mut st[k];
            if !s.open || !cont[k] || s.defer_end == i128::MAX {
                continue;
            }
            let t = ts[j];
            if dq[k] && (t as i128) < sq.first_ws[k] as i128 + w as i128 {
                add::<X, M>(s, lines.get_mut(k), t, v, w, out)?;
            } else {
                // the part of this row owns the series from here
                s.defer_end = i128::MAX;
                pending -= 1;
                if pending == 0 {
                    break;
                }
            }
        }
        i = b;
        debug_assert!(q < parts);
    }
    let st_m = Stats::of::<M>(out.stats);
    for (k, s) in st.iter_mut().enumerate() {
        if s.open {
            emit::<M>(s, lines.get_mut(k), w, out)?;
            // the rows gathered in an unfinished line
            if let Some(buf) = lines.get(k) {
                let l = s.at - s.at % 8;
                if s.at % 8 != 0 {
                    // SAFETY: as in `emit`
                    unsafe { write_rows(st_m, out, buf, l, l.max(s.from), s.at) };
                }
            }
            if s.at != s.end {
                return Err(Error::invalid("aggregation: window count mismatch"));
            }
        }
    }
    // the non-temporal stores are ordered before the caller reads the rows
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a store fence
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
    Ok(())
}

/// Rows whose series are interleaved but each in time order (an ingest batch), cut into
/// consecutive parts of rows, one a thread. A first pass (a thread a part) checks the order
/// and counts each series' windows in each part, which places every window at its final
/// output row; a second pass (a thread a part) runs a window per series over the part's rows
/// and writes each one there, the windows that straddle parts being finished by the earlier
/// part (see `Layout`). `None` if some series goes back in time.
fn aggregate_streaming(
    series: &[i64],
    ts: &[i64],
    vs: &[f64],
    w: i64,
    threads: usize,
    stats: Stats,
    lines_min: usize,
) -> Result<Option<AggOut>> {
    let (numbering, ids) = number_series(series, threads);
    let g = ids.len();
    let n = series.len();
    let parts = threads.clamp(1, n.max(1));
    let cuts: Vec<usize> = (0..=parts).map(|p| n * p / parts).collect();
    let mut scans = Vec::with_capacity(parts);
    for r in parallel_chunks(&cuts, |a, b| {
        scan_part(&series[a..b], &ts[a..b], &vs[a..b], w, &numbering, g)
    }) {
        match r? {
            Some(sc) => scans.push(sc),
            None => return Ok(None),
        }
    }
    let Some(lay) = layout(&scans, g) else {
        return Ok(None);
    };
    let total = lay.total;
    let mut out = AggOut::with_capacity(total, stats);
    let mut ptrs = OutPtrs::of(&mut out);
    ptrs.lines = total >= lines_min;
    let results = parallel_chunks(&cuts, |a, _| {
        let p = cuts.partition_point(|&x| x < a);
        let (num, ids, scans, lay, cuts) = (&numbering, &ids[..], &scans[..], &lay, &cuts[..]);
        // the statistics known at compile time for every statistic and for the seven common
        // ones (no test per column per window), at run time otherwise
        if stats == Stats::ALL {
            streaming_part::<true, { Stats::ALL.0 }>(
                series, ts, vs, w, num, ids, scans, lay, cuts, p, ptrs,
            )
        } else if stats == Stats::BASIC {
            streaming_part::<false, { Stats::BASIC.0 }>(
                series, ts, vs, w, num, ids, scans, lay, cuts, p, ptrs,
            )
        } else if stats.needs_extra() {
            streaming_part::<true, 0>(series, ts, vs, w, num, ids, scans, lay, cuts, p, ptrs)
        } else {
            streaming_part::<false, 0>(series, ts, vs, w, num, ids, scans, lay, cuts, p, ptrs)
        }
    });
    for r in results {
        r?;
    }
    // SAFETY: each part `p` wrote exactly the rows `start[p][k]..end[p][k]` of each series it
    // owns (checked at its end), and these ranges tile `0..total`.
    unsafe { out.set_len(total) };
    Ok(Some(out))
}

/// The windows of one series, whose rows are in time order.
/// Returns `Ok(false)` (with `out` partly filled) if the rows are not in time order.
fn aggregate_series(
    sid: i64,
    ts: &[i64],
    vs: &[f64],
    w: i64,
    stats: Stats,
    out: &mut impl Sink,
) -> Result<bool> {
    if stats.needs_extra() {
        series_windows::<true>(sid, ts, vs, w, out)
    } else {
        series_windows::<false>(sid, ts, vs, w, out)
    }
}

/// `aggregate_series`, the time-weighted mean and increase kept up to date only if `X`.
#[inline(always)]
fn series_windows<const X: bool>(
    sid: i64,
    ts: &[i64],
    vs: &[f64],
    w: i64,
    out: &mut impl Sink,
) -> Result<bool> {
    // skip leading NaNs (their times must be in order too)
    let first = vs.iter().position(|v| !v.is_nan()).unwrap_or(vs.len());
    if ts[..first.min(ts.len())].windows(2).any(|p| p[1] < p[0])
        || (first > 0 && first < ts.len() && ts[first] < ts[first - 1])
    {
        return Ok(false);
    }
    if first == vs.len() {
        return Ok(true);
    }
    let (ts, vs) = (&ts[first..], &vs[first..]);
    let mut acc = Acc::open(sid, window_of(ts[0], w)?, ts[0], vs[0]);
    let mut win_end = acc.ws as i128 + w as i128;
    let mut prev = vs[0];
    let mut prev_t = ts[0];
    for (&t, &v) in ts.iter().zip(vs) {
        if t < prev_t {
            return Ok(false);
        }
        prev_t = t;
        if v.is_nan() {
            continue;
        }
        let step = if X {
            let d = v - prev;
            if d >= 0.0 {
                d
            } else {
                v
            }
        } else {
            0.0
        };
        prev = v;
        if (t as i128) >= win_end {
            out.put(&acc, w);
            let ws = next_window(t, win_end, w)?;
            win_end = ws as i128 + w as i128;
            acc = Acc::open(sid, ws, t, v);
        }
        acc.add::<X>(t, v, step);
    }
    out.put(&acc, w);
    Ok(true)
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
    fn large_inputs_same_in_every_order() {
        // enough rows for the threaded paths, about one reading a window (output-bound)
        let (g, per) = (7i64, 40_000i64);
        let mut rows = Vec::new();
        let mut x = 12345u64;
        for sid in 0..g {
            let mut t = -1_000_000 + sid * 3;
            for k in 0..per {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                t += (x >> 58) as i64; // steps 0..63: ties and gaps
                let v = if (x >> 20).is_multiple_of(11) {
                    f64::NAN
                } else {
                    ((x >> 30) % 1000) as f64 - (k % 97) as f64
                };
                rows.push((sid, t, v));
            }
        }
        let cols = |r: &[(i64, i64, f64)]| {
            (
                r.iter().map(|x| x.0).collect::<Vec<_>>(),
                r.iter().map(|x| x.1).collect::<Vec<_>>(),
                r.iter().map(|x| x.2).collect::<Vec<_>>(),
            )
        };
        let bits = |o: &AggOut| {
            let f = |v: &Column<f64>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            (
                o.series.clone(),
                o.window_start.clone(),
                o.count.clone(),
                [&o.sum, &o.min, &o.max, &o.mean, &o.first, &o.last]
                    .map(f)
                    .to_vec(),
                f(&o.time_weighted_mean),
                f(&o.increase),
            )
        };
        for w in [20i64, 1000, 100_000] {
            let (s, t, v) = cols(&rows);
            let sorted = aggregate(&s, &t, &v, w).unwrap();
            // one series at a time, single-threaded
            let mut one = AggOut::default();
            for sid in 0..g {
                let r: Vec<_> = rows.iter().copied().filter(|x| x.0 == sid).collect();
                let (s1, t1, v1) = cols(&r);
                let o = aggregate(&s1, &t1, &v1, w).unwrap();
                one = concat(vec![one, o], Stats::ALL);
            }
            assert_eq!(bits(&sorted), bits(&one));
            let mut by_time = rows.clone();
            by_time.sort_by_key(|x| x.1); // stable
            let (s, t, v) = cols(&by_time);
            assert_eq!(bits(&aggregate(&s, &t, &v, w).unwrap()), bits(&sorted));
            let mut shuffled = rows.clone();
            shuffled.sort_by_key(|x| (x.1 * 7919) % 1009); // not sorted, ties by input order
            shuffled.sort_by_key(|x| x.1);
            shuffled.reverse();
            shuffled.sort_by_key(|x| x.1 / 500);
            let (s, t, v) = cols(&shuffled);
            let o = aggregate(&s, &t, &v, w).unwrap();
            assert_eq!(o.series, sorted.series);
            assert_eq!(o.count, sorted.count);
            // subsets of the statistics: the same columns, bit for bit, on every path
            for r in [&rows, &by_time, &shuffled] {
                let (s, t, v) = cols(r);
                let all = aggregate(&s, &t, &v, w).unwrap();
                for names in SUBSETS {
                    let st = Stats::from_names(names.iter().copied()).unwrap();
                    let o = aggregate_stats(&s, &t, &v, w, st).unwrap();
                    assert_same_columns(&o, &all, st);
                }
            }
            // one series at a time, a subset
            let st = Stats::from_names(["first", "increase", "mean"]).unwrap();
            let mut one = AggOut {
                stats: st,
                ..AggOut::default()
            };
            for sid in 0..g {
                let r: Vec<_> = rows.iter().copied().filter(|x| x.0 == sid).collect();
                let (s1, t1, v1) = cols(&r);
                let o = aggregate_stats(&s1, &t1, &v1, w, st).unwrap();
                one = concat(vec![one, o], st);
            }
            assert_same_columns(&one, &sorted, st);
        }
    }

    #[test]
    fn streaming_parts_same_as_one_thread() {
        // rows in time order, cut into 1..=6 parts: windows straddling parts, series missing
        // from parts, series whose rows in a part all fall in one window (or are all NaN)
        let mut rows = Vec::new();
        let mut x = 987654321u64;
        for i in 0..3000i64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let sid = match i {
                0..=999 => (x >> 60) as i64 % 5,
                1000..=1999 => 5 + (x >> 60) as i64 % 3, // series 5..7 only
                _ => (x >> 60) as i64 % 9,
            };
            let v = if sid == 3 && i > 1500 || (x >> 20).is_multiple_of(13) {
                f64::NAN
            } else {
                ((x >> 30) % 100) as f64
            };
            rows.push((sid, i * 7 - 5000 + (x >> 62) as i64, v));
        }
        rows.sort_by_key(|r| r.1);
        let s: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let t: Vec<i64> = rows.iter().map(|r| r.1).collect();
        let v: Vec<f64> = rows.iter().map(|r| r.2).collect();
        let bits = |o: &AggOut| {
            let f = |v: &Column<f64>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            (
                o.series.clone(),
                o.window_start.clone(),
                o.count.clone(),
                [
                    &o.sum,
                    &o.min,
                    &o.max,
                    &o.mean,
                    &o.first,
                    &o.last,
                    &o.time_weighted_mean,
                    &o.increase,
                ]
                .map(f)
                .to_vec(),
            )
        };
        for w in [1i64, 10, 100, 1000, 5000, 100_000] {
            let one = aggregate_streaming(&s, &t, &v, w, 1, Stats::ALL, usize::MAX)
                .unwrap()
                .unwrap();
            // the per-series path agrees
            let mut order: Vec<usize> = (0..s.len()).collect();
            order.sort_by_key(|&i| s[i]); // stable: time order within a series
            let pick = |c: &[i64]| order.iter().map(|&i| c[i]).collect::<Vec<_>>();
            let vs: Vec<f64> = order.iter().map(|&i| v[i]).collect();
            let sorted = aggregate(&pick(&s), &pick(&t), &vs, w).unwrap();
            assert_eq!(bits(&one), bits(&sorted), "w {w}");
            // with and without whole-line writes
            for (parts, lines_min) in (1..=6).flat_map(|p| [(p, 0), (p, usize::MAX)]) {
                let o = aggregate_streaming(&s, &t, &v, w, parts, Stats::ALL, lines_min)
                    .unwrap()
                    .unwrap();
                assert_eq!(bits(&o), bits(&one), "w {w}, {parts} parts");
                for st in [
                    Stats::from_names(["last", "increase", "count"]).unwrap(),
                    Stats::BASIC,
                    Stats::MAX,
                ] {
                    let o = aggregate_streaming(&s, &t, &v, w, parts, st, lines_min)
                        .unwrap()
                        .unwrap();
                    assert_same_columns(&o, &one, st);
                }
            }
            // sparse series ids (numbered through a map)
            let far: Vec<i64> = s.iter().map(|&x| x * 1_000_000_000_007 - 3).collect();
            let o = aggregate_streaming(&far, &t, &v, w, 3, Stats::ALL, 0)
                .unwrap()
                .unwrap();
            let mut want = one.clone();
            for x in want.series.iter_mut() {
                *x = *x * 1_000_000_000_007 - 3;
            }
            assert_eq!(bits(&o), bits(&want), "w {w}, sparse ids");
        }
        // a series going back in time across parts is not for this path
        let (s2, t2, v2) = ([1i64, 2, 1, 2], [5i64, 6, 4, 7], [1.0, 2.0, 3.0, 4.0]);
        for parts in 1..=4 {
            assert!(aggregate_streaming(&s2, &t2, &v2, 10, parts, Stats::ALL, 0)
                .unwrap()
                .is_none());
        }
    }

    const SUBSETS: [&[&str]; 6] = [
        &["count", "sum", "min", "max", "mean", "first", "last"],
        &["last", "time_weighted_mean"],
        &["increase"],
        &["min", "max", "min"],
        &[],
        &[
            "count",
            "sum",
            "min",
            "max",
            "mean",
            "first",
            "last",
            "time_weighted_mean",
            "increase",
        ],
    ];

    /// `o` has exactly the columns of `st`, each bit for bit that of `all`.
    fn assert_same_columns(o: &AggOut, all: &AggOut, st: Stats) {
        let f = |v: &Column<f64>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(o.stats, st);
        assert_eq!(o.series, all.series);
        assert_eq!(o.window_start, all.window_start);
        let want_i = |c: &Column<i64>, s: Stats| {
            if st.contains(s) {
                c.to_vec()
            } else {
                vec![]
            }
        };
        assert_eq!(o.count, want_i(&all.count, Stats::COUNT));
        for (got, full, s) in [
            (&o.sum, &all.sum, Stats::SUM),
            (&o.min, &all.min, Stats::MIN),
            (&o.max, &all.max, Stats::MAX),
            (&o.mean, &all.mean, Stats::MEAN),
            (&o.first, &all.first, Stats::FIRST),
            (&o.last, &all.last, Stats::LAST),
            (
                &o.time_weighted_mean,
                &all.time_weighted_mean,
                Stats::TIME_WEIGHTED_MEAN,
            ),
            (&o.increase, &all.increase, Stats::INCREASE),
        ] {
            assert_eq!(f(got), if st.contains(s) { f(full) } else { vec![] });
        }
    }

    #[test]
    fn columns() {
        // large: rows start on a huge-page boundary (on Linux); small: a plain Vec
        for n in [3usize, 1 << 20] {
            let mut c: Column<i64> = Column::with_capacity(n);
            for i in 0..n as i64 + 5 {
                c.push(i * 3); // past the capacity too
            }
            assert_eq!(c.len(), n + 5);
            assert_eq!(c[n + 4], (n as i64 + 4) * 3);
            let v = c.clone().into_vec();
            assert_eq!(c, v);
            c.extend_from_slice(&[7, 8]);
            assert_eq!(&c[n + 5..], &[7, 8]);
            let (buf, off, len) = c.into_parts();
            assert_eq!((buf.len(), len), (0, n + 7));
            assert!(off + len <= buf.capacity());
        }
        let c: Column<f64> = Column::with_capacity(1 << 20);
        #[cfg(target_os = "linux")]
        assert_eq!(c.as_ptr() as usize % HUGE_PAGE, 0);
        assert!(c.is_empty());
        assert_eq!(Column::from(vec![1.5, 2.5]), vec![1.5, 2.5]);
    }

    #[test]
    fn stats_names() {
        assert_eq!(
            Stats::from_names(Stats::NAMES.iter().map(|(n, _)| *n)).unwrap(),
            Stats::ALL
        );
        assert_eq!(Stats::from_names([]).unwrap(), Stats::NONE);
        assert!(Stats::from_names(["count", "median"]).is_err());
        let o = aggregate_stats(&[1, 1, 2], &[0, 70, 5], &[1.0, 2.0, 3.0], 60, Stats::MAX).unwrap();
        assert_eq!(o.window_start, vec![0, 60, 0]);
        assert_eq!(o.max, vec![1.0, 2.0, 3.0]);
        assert!(o.count.is_empty() && o.sum.is_empty() && o.increase.is_empty());
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
