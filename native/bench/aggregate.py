"""Bocage grouped windowed aggregation vs pandas and chDB, and the quantile sketch, on the
shared datasets.

All the series of every dataset folder (laid out like shared/data) are stacked into one table
of rows (series id, epoch-ms timestamp, float64 value); value-only datasets get a one-minute
cadence. For each window size, the same rows are aggregated per (series, window) by:

  bocage   bocage_native.aggregate(series, timestamps, values, window_ms, stats=[count, sum,
           min, max, mean, first, last]): the same seven statistics as the peers
  (all)    bocage_native.aggregate(series, timestamps, values, window_ms): every statistic,
           i.e. also time_weighted_mean and increase (more work than the peers do); shown in
           the "all ms" and "all vs pandas" columns, not used for the verdict
  pandas   DataFrame.groupby([series, window]).agg(count, sum, min, max, mean, first, last)
           (rows sorted by time first when they are not, as first/last need)
  chDB     SELECT series, intDiv(ts, w) * w, count(), sum(v), min(v), max(v), avg(v),
           argMin(v, ts), argMax(v, ts) ... GROUP BY 1, 2 ORDER BY 1, 2 over Python(df): chDB
           reads the pandas DataFrame's numpy columns in place; the result comes back as a
           DataFrame. chDB runs on every core, Bocage on one.

Two row orders are measured: "sorted" (by series, then time: the order a frame or a
per-series batch has) and "time" (sorted by time only, series interleaved: the order of an
ingest batch). Each method runs --repeat times in a row after a warm-up, in two rounds of
opposite order; the better of its two medians is kept. Targets: Bocage (the same seven
statistics) >= 10x faster than pandas and not slower than chDB. Then the sketch: batched
insertion in ns/value (target <= 20) and its worst relative error vs exact quantiles.

Usage:  uv run python native/bench/aggregate.py [DATA_DIR ...] [--windows 60000,3600000,86400000]
                                                [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

import bocage_native as bn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from codec import DEFAULT_DATA, load

try:
    import chdb
except ImportError:  # chdb is optional for a gateway; the bench says so
    chdb = None


def rows_of(folders: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    series, times, values = [], [], []
    sid = 0
    for folder in folders:
        groups = load(folder)
        for col in groups["values"]:
            if "timestamps" in groups:
                ts = groups["timestamps"][0].astype(np.int64)
                if ts.max() < 10**11:  # epoch seconds
                    ts = ts * 1000
            else:
                ts = 1_600_000_000_000 + np.arange(len(col), dtype=np.int64) * 60_000
            series.append(np.full(len(col), sid, dtype=np.int64))
            times.append(ts)
            values.append(col.astype(np.float64))
            sid += 1
    return np.concatenate(series), np.concatenate(times), np.concatenate(values)


SEVEN = ["count", "sum", "min", "max", "mean", "first", "last"]


def run_bocage(s, t, v, w):
    return bn.aggregate(s, t, v, w, stats=SEVEN)


def run_bocage_all(s, t, v, w):
    return bn.aggregate(s, t, v, w)


def run_pandas(s, t, v, w, time_sorted_within_series: bool):
    df = pd.DataFrame({"s": s, "w": t // w * w, "t": t, "v": v})
    if not time_sorted_within_series:
        df = df.sort_values(["t"], kind="stable")
    return df.groupby(["s", "w"], sort=True)["v"].agg(
        ["count", "sum", "min", "max", "mean", "first", "last"]
    )


def run_chdb(s, t, v, w):
    # read in place by chDB's Python() table function
    df = pd.DataFrame({"s": s, "t": t, "v": v})  # noqa: F841
    sql = (
        f"SELECT s, intDiv(t, {w}) * {w} AS w, count() AS count, sum(v) AS sum, min(v) AS min, "
        "max(v) AS max, avg(v) AS mean, argMin(v, t) AS first, argMax(v, t) AS last "
        "FROM Python(df) GROUP BY s, w ORDER BY s, w"
    )
    return chdb.query(sql, "DataFrame")


def check_same(ours: dict, theirs: pd.DataFrame) -> None:
    for k in ("count", "sum", "min", "max", "mean", "first", "last"):
        a = ours[k]
        b = theirs[k].to_numpy(dtype=np.float64)
        if len(a) != len(b) or not np.allclose(a, b, rtol=1e-9, atol=1e-6, equal_nan=True):
            raise SystemExit(f"results differ on {k}")


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("roots", nargs="*", default=[str(DEFAULT_DATA)])
    ap.add_argument("--windows", default="60000,3600000,86400000")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    folders: list[str] = []
    for root in args.roots:
        if glob.glob(os.path.join(root, "*.csv")):
            folders.append(root)
        else:
            folders += sorted(d for d in glob.glob(os.path.join(root, "*")) if os.path.isdir(d))
    s, t, v = rows_of(folders)
    by_series = np.lexsort((t, s))
    by_time = np.argsort(t, kind="stable")
    orders = {"sorted": by_series, "time": by_time}
    if not args.json:
        print(
            f"{len(s):,} rows, {len(np.unique(s))} series from {len(folders)} datasets; chDB "
            f"{'available' if chdb else 'NOT INSTALLED'}"
        )
        print(
            f"{'order':7} {'window':>9} {'groups':>8} {'bocage ms':>10} {'pandas ms':>10} "
            f"{'chDB ms':>9} {'vs pandas':>10} {'vs chDB':>8} {'all ms':>7} {'all vs pandas':>14}  "
            "verdict"
        )
    for w in [int(x) for x in args.windows.split(",")]:
        for name, order in orders.items():
            ss, tt, vv = s[order], t[order], v[order]
            ours = run_bocage(ss, tt, vv, w)
            everything = run_bocage_all(ss, tt, vv, w)
            for k, col in ours.items():
                if not np.array_equal(col.view(np.int64), everything[k].view(np.int64)):
                    raise SystemExit(f"stats= changes {k}")
            check_same(ours, run_pandas(ss, tt, vv, w, name == "sorted"))
            if chdb:
                check_same(ours, run_chdb(ss, tt, vv, w))
            sorted_rows = name == "sorted"
            fns = {
                "bocage": partial(run_bocage, ss, tt, vv, w),
                "bocage_all": partial(run_bocage_all, ss, tt, vv, w),
                "pandas": partial(run_pandas, ss, tt, vv, w, sorted_rows),
            }
            if chdb:
                fns["chdb"] = partial(run_chdb, ss, tt, vv, w)
            # Each method runs `repeat` times in a row after a warm-up (as in a rollup loop);
            # two rounds in opposite orders, the better median of each method kept.
            best: dict[str, float] = {}
            for round_order in (list(fns), list(reversed(fns))):
                for peer in round_order:
                    fns[peer]()
                    r = []
                    for _ in range(args.repeat):
                        t0 = time.perf_counter()
                        fns[peer]()
                        r.append(time.perf_counter() - t0)
                    best[peer] = min(best.get(peer, float("inf")), statistics.median(r))
            med = {k: v * 1e3 for k, v in best.items()}
            vs_pandas = med["pandas"] / med["bocage"]
            all_vs_pandas = med["pandas"] / med["bocage_all"]
            vs_chdb = med["chdb"] / med["bocage"] if "chdb" in med else float("nan")
            gaps = []
            if vs_pandas < 10:
                gaps.append(f"{vs_pandas:.1f}x pandas (< 10x)")
            if "chdb" in med and vs_chdb < 1:
                gaps.append(f"{vs_chdb:.2f}x chDB (slower)")
            if "chdb" not in med:
                gaps.append("chDB not measured")
            verdict = "OK" if not gaps else "MISS: " + "; ".join(gaps)
            if args.json:
                print(
                    json.dumps(
                        {
                            "order": name,
                            "window_ms": w,
                            "rows": len(s),
                            "groups": len(ours["count"]),
                            "bocage_ms": med["bocage"],
                            "bocage_all_stats_ms": med["bocage_all"],
                            "pandas_ms": med["pandas"],
                            "chdb_ms": med.get("chdb"),
                            "speedup_vs_pandas": vs_pandas,
                            "speedup_vs_chdb": vs_chdb,
                            "all_stats_speedup_vs_pandas": all_vs_pandas,
                            "verdict": verdict,
                        }
                    )
                )
            else:
                print(
                    f"{name:7} {w:>9} {len(ours['count']):>8} {med['bocage']:10.1f} "
                    f"{med['pandas']:10.1f} {med.get('chdb', float('nan')):9.1f} "
                    f"{vs_pandas:9.1f}x {vs_chdb:7.2f}x {med['bocage_all']:7.1f} "
                    f"{all_vs_pandas:13.1f}x  {verdict}",
                    flush=True,
                )

    # quantile sketch: batched insertion speed and accuracy
    rng = np.random.default_rng(0)
    data = np.concatenate([v[~np.isnan(v)], rng.lognormal(0, 2, 1_000_000)])
    rates = []
    for _ in range(args.repeat):
        sk = bn.QuantileSketch(0.01)
        t0 = time.perf_counter()
        for part in np.array_split(data, 64):
            sk.add(part)
        rates.append((time.perf_counter() - t0) / len(data) * 1e9)
    ns = statistics.median(rates)
    exact = np.sort(data)
    worst = 0.0
    for q in (0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999):
        want = exact[int(q * (len(data) - 1))]
        if want != 0:
            worst = max(worst, abs(sk.quantile(q) - want) / abs(want))
    size = len(sk.to_bytes())
    verdict = "OK" if ns <= 20 and worst <= 0.01 and size <= 5120 else "MISS"
    if args.json:
        print(
            json.dumps(
                {
                    "sketch": {
                        "values": len(data),
                        "ns_per_value": ns,
                        "worst_relative_error": worst,
                        "serialised_bytes": size,
                        "verdict": verdict,
                    }
                }
            )
        )
    else:
        print(
            f"\nsketch (alpha 0.01): {len(data):,} values in 64 batches, {ns:.1f} ns/value "
            f"(target <= 20), worst relative error {worst:.4f} over 9 quantiles (bound 0.01), "
            f"{size} bytes serialised (<= 5120)  {verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
