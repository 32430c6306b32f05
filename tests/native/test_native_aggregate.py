"""Grouped windowed aggregation against a plain-Python reading of its documented definitions,
and the quantile sketch against exact quantiles."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bocage_native as bn

KEYS = [
    "series",
    "window_start",
    "count",
    "sum",
    "min",
    "max",
    "mean",
    "first",
    "last",
    "time_weighted_mean",
    "increase",
]


def reference(series: np.ndarray, ts: np.ndarray, values: np.ndarray, w: int) -> dict[str, list]:
    rows = sorted(
        (int(s), int(t), i, float(v))
        for i, (s, t, v) in enumerate(zip(series, ts, values, strict=True))
        if not math.isnan(v)
    )
    groups: dict[tuple[int, int], list[tuple[int, float, float]]] = defaultdict(list)
    prev: dict[int, float] = {}
    for s, t, _, v in rows:
        step = 0.0
        if s in prev:
            step = v - prev[s] if v >= prev[s] else v
        prev[s] = v
        groups[(s, (t // w) * w)].append((t, v, step))
    out: dict[str, list] = {k: [] for k in KEYS}
    for (s, ws), items in sorted(groups.items()):
        vals = [v for _, v, _ in items]
        end = ws + w
        tw = sum(
            v * ((items[i + 1][0] if i + 1 < len(items) else end) - t)
            for i, (t, v, _) in enumerate(items)
        )
        out["series"].append(s)
        out["window_start"].append(ws)
        out["count"].append(len(vals))
        out["sum"].append(math.fsum(vals))
        out["min"].append(min(vals))
        out["max"].append(max(vals))
        out["mean"].append(math.fsum(vals) / len(vals))
        out["first"].append(vals[0])
        out["last"].append(vals[-1])
        out["time_weighted_mean"].append(tw / (end - items[0][0]))
        out["increase"].append(math.fsum(st for _, _, st in items))
    return out


def check(got: dict[str, np.ndarray], want: dict[str, list]) -> None:
    assert set(got) == set(KEYS)
    for k in ("series", "window_start", "count"):
        assert got[k].dtype == np.int64
        assert got[k].tolist() == want[k], k
    for k in KEYS[3:]:
        assert got[k].dtype == np.float64
        np.testing.assert_allclose(got[k], want[k], rtol=1e-9, atol=1e-6, err_msg=k)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 4),
            st.integers(-5000, 5000),
            st.one_of(st.integers(-100, 100).map(float), st.just(math.nan)),
        ),
        max_size=80,
    ),
    st.sampled_from([1, 7, 60, 1000]),
)
def test_matches_reference(rows: list[tuple[int, int, float]], w: int) -> None:
    s = np.array([r[0] for r in rows], dtype=np.int64)
    t = np.array([r[1] for r in rows], dtype=np.int64)
    v = np.array([r[2] for r in rows], dtype=np.float64)
    check(bn.aggregate(s, t, v, w), reference(s, t, v, w))


def test_sorted_and_shuffled_inputs_agree() -> None:
    rng = np.random.default_rng(5)
    n = 20_000
    s = rng.integers(0, 50, n)
    t = rng.integers(0, 3_600_000, n)
    v = np.round(rng.normal(20, 5, n), 1)
    order = np.lexsort((t, s))
    a = bn.aggregate(s, t, v, 60_000)
    b = bn.aggregate(s[order], t[order], v[order], 60_000)
    for k in KEYS:
        if k in ("first", "last", "time_weighted_mean", "increase"):
            continue  # ties on (series, time) may be ordered differently
        np.testing.assert_allclose(a[k], b[k], rtol=1e-12)


def test_matches_pandas_groupby() -> None:
    rng = np.random.default_rng(7)
    n = 50_000
    s = rng.integers(0, 20, n)
    t = np.sort(rng.integers(0, 86_400_000, n))
    v = rng.normal(0, 10, n)
    got = bn.aggregate(s, t, v, 300_000)
    df = pd.DataFrame({"s": s, "w": t // 300_000 * 300_000, "t": t, "v": v}).sort_values(
        ["s", "t"], kind="stable"
    )
    g = df.groupby(["s", "w"], sort=True)["v"].agg(
        ["count", "sum", "min", "max", "mean", "first", "last"]
    )
    np.testing.assert_array_equal(got["series"], g.index.get_level_values(0))
    np.testing.assert_array_equal(got["window_start"], g.index.get_level_values(1))
    for col in g.columns:
        np.testing.assert_allclose(got[col], g[col].to_numpy(), rtol=1e-9, atol=1e-9)


def test_time_weighted_mean_and_counter_resets() -> None:
    s = np.zeros(6, dtype=np.int64)
    t = np.array([0, 10, 30, 60, 70, 100], dtype=np.int64)
    v = np.array([1.0, 3.0, 2.0, 10.0, 4.0, 6.0])
    out = bn.aggregate(s, t, v, 60)
    # window 0: 1 for 10 ms, 3 for 20 ms, 2 for 30 ms (to the window end)
    assert out["time_weighted_mean"][0] == pytest.approx((10 + 60 + 60) / 60)
    # window 60: 10 for 10 ms, 4 for 30 ms, 6 for 20 ms
    assert out["time_weighted_mean"][1] == pytest.approx((100 + 120 + 120) / 60)
    # increases: +2, reset to 2 (counts 2), then +8 into window 60, reset to 4, +2
    assert out["increase"].tolist() == [4.0, 14.0]
    assert out["count"].tolist() == [3, 3]


def test_negative_times_and_integer_values() -> None:
    out = bn.aggregate([1, 1], [-1, 0], np.array([5, 7]), 10)
    assert out["window_start"].tolist() == [-10, 0]
    assert out["sum"].tolist() == [5.0, 7.0]


@pytest.mark.parametrize(
    "stats",
    [
        ["count", "sum", "min", "max", "mean", "first", "last"],
        ["last", "time_weighted_mean"],
        ["increase"],
        ["max", "min", "max"],
        [],
        KEYS[2:],
    ],
)
@pytest.mark.parametrize("order", ["sorted", "time", "shuffled"])
@pytest.mark.parametrize("n", [3_000, 300_000])
def test_stats_subsets_bit_identical(stats: list[str], order: str, n: int) -> None:
    # 300,000 rows take the threaded paths; one-second windows hold one or two readings each
    rng = np.random.default_rng(11)
    s = rng.integers(0, 40, n)
    t = rng.integers(0, n * 100, n)
    v = np.round(rng.normal(20, 5, n), 2)
    v[rng.random(n) < 0.05] = np.nan
    idx = {
        "sorted": np.lexsort((t, s)),
        "time": np.argsort(t, kind="stable"),
        "shuffled": rng.permutation(n),
    }[order]
    s, t, v = s[idx], t[idx], v[idx]
    full = bn.aggregate(s, t, v, 1000)
    part = bn.aggregate(s, t, v, 1000, stats=stats)
    assert list(part) == ["series", "window_start"] + [k for k in KEYS[2:] if k in stats]
    for k, col in part.items():
        assert col.dtype == full[k].dtype, k
        np.testing.assert_array_equal(col.view(np.int64), full[k].view(np.int64), err_msg=k)


def test_stats_errors() -> None:
    with pytest.raises(ValueError, match="unknown statistic"):
        bn.aggregate([1], [1], [1.0], 10, stats=["count", "median"])
    with pytest.raises(TypeError):
        bn.aggregate([1], [1], [1.0], 10, stats="count")  # type: ignore[arg-type]


def test_aggregate_errors() -> None:
    with pytest.raises(ValueError, match="same length"):
        bn.aggregate([1, 2], [1], [1.0, 2.0], 10)
    with pytest.raises(ValueError, match="positive"):
        bn.aggregate([1], [1], [1.0], 0)
    with pytest.raises(ValueError, match="range"):
        bn.aggregate([1], [np.iinfo(np.int64).min], [1.0], 7)
    assert all(len(a) == 0 for a in bn.aggregate([], [], [], 10).values())


# ------------------------------------------------------------------ quantile sketch

DISTRIBUTIONS = {
    "normal": lambda r, n: r.normal(100, 15, n),
    "lognormal": lambda r, n: r.lognormal(0, 2, n),
    "mixed_sign": lambda r, n: r.normal(0, 50, n),
    "decimal_sensor": lambda r, n: np.round(r.normal(18, 6, n), 1),
    "with_zeros": lambda r, n: np.where(r.random(n) < 0.4, 0.0, r.exponential(500, n)),
}


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
@pytest.mark.parametrize("alpha", [0.01, 0.02])
def test_sketch_relative_error_bound(name: str, alpha: float) -> None:
    rng = np.random.default_rng(11)
    data = DISTRIBUTIONS[name](rng, 200_000)
    sketch = bn.QuantileSketch(alpha)
    for part in np.array_split(data, 7):
        sketch.add(part)
    assert sketch.count == len(data)
    exact = np.sort(data)
    for q in (0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0):
        want = exact[math.floor(q * (len(data) - 1))]
        got = sketch.quantile(q)
        assert abs(got - want) <= alpha * abs(want) + 1e-12, (q, got, want)
    assert len(sketch.to_bytes()) <= 5 * 1024


def test_sketch_merge_equals_single_pass() -> None:
    rng = np.random.default_rng(2)
    data = rng.lognormal(3, 1, 100_000)
    whole = bn.QuantileSketch()
    whole.add(data)
    parts = []
    for chunk in np.array_split(data, 10):
        s = bn.QuantileSketch()
        s.add(chunk)
        parts.append(s)
    merged = bn.QuantileSketch()
    for s in parts:
        merged.merge(s)
    assert merged.to_bytes()[:20] == whole.to_bytes()[:20]  # magic, accuracy, count, zero count
    for q in (0.01, 0.5, 0.99):
        assert merged.quantile(q) == whole.quantile(q)
    with pytest.raises(ValueError, match="relative accuracy"):
        merged.merge(bn.QuantileSketch(0.05))


def test_sketch_serialisation() -> None:
    s = bn.QuantileSketch(0.01)
    s.add(
        np.concatenate([-np.logspace(-300, 300, 5000), np.logspace(-300, 300, 5000), np.zeros(10)])
    )
    b = s.to_bytes()
    assert len(b) <= 5 * 1024
    t = bn.QuantileSketch.from_bytes(b)
    assert t.count == s.count
    assert t.to_bytes() == b
    assert (t.min, t.max) == (s.min, s.max)
    assert t.quantile(0.0) == s.min
    assert t.quantile(1.0) == s.max
    empty = bn.QuantileSketch()
    assert math.isnan(empty.quantile(0.5))
    assert bn.QuantileSketch.from_bytes(empty.to_bytes()).count == 0
    for cut in range(len(b)):
        with pytest.raises(ValueError, match=r"sketch|truncated"):
            bn.QuantileSketch.from_bytes(b[:cut])


def test_sketch_rejects_bad_input() -> None:
    s = bn.QuantileSketch()
    with pytest.raises(ValueError, match="finite"):
        s.add(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="finite"):
        s.add(np.array([np.inf]))
    assert s.count == 0  # nothing of a rejected batch is added
    with pytest.raises(ValueError, match="quantile"):
        s.quantile(1.5)
    for bad in (0.0, 1.0, -0.1, math.nan):
        with pytest.raises(ValueError, match="relative_accuracy"):
            bn.QuantileSketch(bad)
    s.add(np.array([1, 2, 3]))  # integers are accepted
    assert s.count == 3
