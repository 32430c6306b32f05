"""Bocage column codec vs its peers, on every dataset of a data folder, batch by batch.

For each dataset folder (one CSV + README, laid out like shared/data), each column group
(timestamps, values) and each batch size, every column is cut into consecutive batches; each
batch is compressed on its own by Bocage (`encode_timestamps` / `encode_values`, the full
encoded bytes including Bocage's own headers) and by the peers on the raw little-endian array
of the same batch: pcodec 1.1.0 (default ChunkConfig, standalone.simple_compress), zstd at
levels 3 and 19, lz4 frame. Prints bits/value, encode and decode throughput (MB/s of raw
int64/float64 input, median of several runs) and a verdict with the gap for each target:

  size    Bocage bits/value <= the best peer's        (every dataset, group and batch)
  encode  Bocage encode MB/s >= zstd-3 encode MB/s    (same arrays, same run)
  decode  Bocage decode MB/s >= pcodec decode MB/s    (same arrays, same run)

Then the whole-frame overhead of a typical gateway minute (10 series x 60 readings): bytes per
reading of a Bocage frame vs the same readings as JSON and as msgpack.

Usage:  uv run python native/bench/codec.py [DATA_DIR ...] [--batches 64,256,1024,16384]
                                            [--repeat 5] [--json]
DATA_DIR defaults to ../shared/data relative to the repository root.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import lz4.frame
import msgspec
import numpy as np
import pandas as pd
import zstandard
from pcodec import ChunkConfig, standalone

import bocage_native as bn

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "data"

_Z3 = zstandard.ZstdCompressor(level=3)
_Z19 = zstandard.ZstdCompressor(level=19)
_ZD = zstandard.ZstdDecompressor()
_PCO_CFG = ChunkConfig()


def load(folder: str) -> dict[str, list[np.ndarray]]:
    """Columns of a dataset folder, grouped as {'timestamps': [...], 'values': [...]}.

    Same contract as shared/bench/baselines.py: a value-only CSV (no header, one number a
    line, '""' = missing) yields values only; otherwise the first column is the timestamp
    (epoch integers, or ISO text turned into epoch seconds), every other column a series,
    and rows with a missing cell are dropped.
    """
    path = sorted(glob.glob(os.path.join(folder, "*.csv")))[0]
    with open(path) as f:
        first = f.readline()
    if not any(c.isalpha() for c in first):
        with open(path) as f:
            vals = [line.strip() for line in f if line.strip() not in ('""', "")]
        return {"values": [np.array(vals, dtype=np.float64)]}
    df = pd.read_csv(path).dropna()
    tcol = df.columns[0]
    if pd.api.types.is_numeric_dtype(df[tcol]):
        ts = df[tcol].to_numpy().astype(np.int64)
    else:
        t = pd.to_datetime(df[tcol], utc=True)
        ts = (
            ((t - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy().astype(np.int64)
        )
    values = []
    for c in df.columns[1:]:
        v = df[c].to_numpy()
        values.append(
            v.astype(np.int64) if pd.api.types.is_integer_dtype(v) else v.astype(np.float64)
        )
    return {"timestamps": [ts], "values": values}


def batches(cols: list[np.ndarray], size: int) -> list[np.ndarray]:
    out = []
    for column in cols:
        col = np.ascontiguousarray(column)
        out += [np.ascontiguousarray(col[s : s + size]) for s in range(0, len(col), size)]
    return out


def measure(group: str, chunks: list[np.ndarray], repeat: int) -> dict[str, dict[str, float]]:
    n = sum(len(c) for c in chunks)
    raw = n * 8
    enc_b = bn.encode_timestamps if group == "timestamps" else bn.encode_values
    dec_b = bn.decode_timestamps if group == "timestamps" else bn.decode_values
    codecs: dict[str, tuple[Callable, Callable | None]] = {
        "bocage": (enc_b, dec_b),
        "pcodec": (lambda a: standalone.simple_compress(a, _PCO_CFG), standalone.simple_decompress),
        "zstd-3": (lambda a: _Z3.compress(a.tobytes()), _ZD.decompress),
        # zstd-19 and lz4: sizes only (zstd-19 takes seconds; neither is a speed target)
        "zstd-19": (lambda a: _Z19.compress(a.tobytes()), None),
        "lz4": (lambda a: lz4.frame.compress(a.tobytes()), None),
    }
    out: dict[str, dict[str, float]] = {}
    encoded: dict[str, list[bytes]] = {}
    for name, (enc, dec) in codecs.items():
        encoded[name] = [enc(c) for c in chunks]
        out[name] = {"bits_per_value": 8 * sum(len(e) for e in encoded[name]) / n}
        if name == "bocage":
            for c, e in zip(chunks, encoded[name], strict=True):
                d = dec(e)
                if d.dtype != c.dtype or d.tobytes() != c.tobytes():
                    raise SystemExit(f"round-trip failure for {group} batch of {len(c)}")
    # Timed codecs take turns within each repetition, so that a slow moment of the machine
    # hits all of them alike; the median of the repetitions is kept.
    timed_codecs = {k: v for k, v in codecs.items() if v[1] is not None}
    runs: dict[str, dict[str, list[float]]] = {k: {"enc": [], "dec": []} for k in timed_codecs}
    for _ in range(repeat + 1):
        for name, (enc, dec) in timed_codecs.items():
            blobs = encoded[name]
            t0 = time.perf_counter()
            for c in chunks:
                enc(c)
            t1 = time.perf_counter()
            for e in blobs:
                dec(e)
            t2 = time.perf_counter()
            runs[name]["enc"].append(t1 - t0)
            runs[name]["dec"].append(t2 - t1)
    for name in timed_codecs:
        # the first repetition warms up
        out[name]["encode_mb_s"] = raw / statistics.median(runs[name]["enc"][1:]) / 1e6
        out[name]["decode_mb_s"] = raw / statistics.median(runs[name]["dec"][1:]) / 1e6
    return out


def gateway_minute(datasets: dict[str, dict[str, list[np.ndarray]]]) -> dict[str, float]:
    """10 series x 60 readings taken from the datasets (1 s cadence, epoch ms), encoded as one
    Bocage frame, as JSON and as msgpack (one object per reading, the shape an edge agent
    would naively send: sensor, metric, time, value, quality)."""
    t0 = 1_700_000_000_000
    series = []
    pool = [
        (name, i, col)
        for name, groups in sorted(datasets.items())
        for i, col in enumerate(groups["values"][:3])
    ]
    for k, (name, i, col) in enumerate(pool[:10]):
        vals = np.ascontiguousarray(col[1000:1060] if len(col) >= 1060 else col[:60])
        jitter = (np.arange(60) * 7919 % 23).astype(np.int64)
        ts = t0 + np.arange(len(vals), dtype=np.int64) * 1000 + jitter
        series.append((f"{name}-{i}", "value", ts, vals, None))
        _ = k
    readings = sum(len(s[2]) for s in series)
    frame = bn.encode_frame("21231", "gw-0001", 1, t0 + 60_000, series)
    rows = [
        {"sensor": s, "metric": m, "time": int(t), "value": v.item(), "quality": 0}
        for s, m, ts, vs, _ in series
        for t, v in zip(ts, vs, strict=True)
    ]
    js = json.dumps(rows, separators=(",", ":")).encode()
    mp = msgspec.msgpack.encode(rows)
    return {
        "series": len(series),
        "readings": readings,
        "bocage_frame_bytes_per_reading": len(frame) / readings,
        "json_bytes_per_reading": len(js) / readings,
        "msgpack_bytes_per_reading": len(mp) / readings,
        "json_zstd3_bytes_per_reading": len(_Z3.compress(js)) / readings,
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("roots", nargs="*", default=[str(DEFAULT_DATA)])
    ap.add_argument("--batches", default="64,256,1024,16384")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="one JSON object per line")
    args = ap.parse_args()
    sizes = [int(b) for b in args.batches.split(",")]
    folders: list[str] = []
    for root in args.roots:
        if glob.glob(os.path.join(root, "*.csv")):
            folders.append(root)
        else:
            folders += sorted(d for d in glob.glob(os.path.join(root, "*")) if os.path.isdir(d))
    if not folders:
        print(f"no dataset folders under {args.roots}", file=sys.stderr)
        return 2
    if not args.json:
        print(
            f"{'dataset':24} {'group':10} {'batch':>6} {'bocage':>7} {'pcodec':>7} {'zstd3':>7} "
            f"{'zstd19':>7} {'lz4':>7} {'best':>7}  {'enc':>6} {'zstd3':>6}  {'dec':>6} "
            f"{'pcodec':>6}  verdict"
        )
    misses = 0
    rows = 0
    datasets = {}
    for folder in folders:
        name = os.path.basename(os.path.normpath(folder))
        groups = load(folder)
        datasets[name] = groups
        for group, cols in groups.items():
            for size in sizes:
                res = measure(group, batches(cols, size), args.repeat)
                rows += 1
                peers = {k: v for k, v in res.items() if k != "bocage"}
                best = min(peers, key=lambda k: peers[k]["bits_per_value"])
                b = res["bocage"]
                gaps = []
                if b["bits_per_value"] > peers[best]["bits_per_value"]:
                    over = b["bits_per_value"] - peers[best]["bits_per_value"]
                    gaps.append(f"size +{over:.2f} b/v vs {best}")
                if b["encode_mb_s"] < res["zstd-3"]["encode_mb_s"]:
                    gaps.append(
                        f"encode {b['encode_mb_s'] / res['zstd-3']['encode_mb_s']:.2f}x zstd-3"
                    )
                if b["decode_mb_s"] < res["pcodec"]["decode_mb_s"]:
                    gaps.append(
                        f"decode {b['decode_mb_s'] / res['pcodec']['decode_mb_s']:.2f}x pcodec"
                    )
                misses += bool(gaps)
                verdict = "OK" if not gaps else "MISS: " + "; ".join(gaps)
                if args.json:
                    for codec, r in res.items():
                        print(
                            json.dumps(
                                {
                                    "dataset": name,
                                    "group": group,
                                    "batch": size,
                                    "codec": codec,
                                    "bits_per_value": round(r["bits_per_value"], 4),
                                    "encode_mb_s": round(r["encode_mb_s"], 1)
                                    if "encode_mb_s" in r
                                    else None,
                                    "decode_mb_s": round(r["decode_mb_s"], 1)
                                    if "decode_mb_s" in r
                                    else None,
                                    **(
                                        {"verdict": verdict, "best_peer": best}
                                        if codec == "bocage"
                                        else {}
                                    ),
                                }
                            ),
                            flush=True,
                        )
                else:
                    print(
                        f"{name:24} {group:10} {size:>6} {b['bits_per_value']:7.2f} "
                        + " ".join(
                            f"{res[p]['bits_per_value']:7.2f}"
                            for p in ("pcodec", "zstd-3", "zstd-19", "lz4")
                        )
                        + f" {best:>7}  {b['encode_mb_s']:6.0f} "
                        + f"{res['zstd-3']['encode_mb_s']:6.0f}  {b['decode_mb_s']:6.0f} "
                        + f"{res['pcodec']['decode_mb_s']:6.0f}  {verdict}",
                        flush=True,
                    )
    minute = gateway_minute(datasets)
    if args.json:
        print(json.dumps({"gateway_minute": minute}))
        print(json.dumps({"summary": {"rows": rows, "rows_missing_a_target": misses}}))
    else:
        print()
        print(
            f"gateway minute ({minute['series']} series x 60 readings = {minute['readings']} "
            f"readings), bytes/reading: bocage frame "
            f"{minute['bocage_frame_bytes_per_reading']:.2f}, "
            f"msgpack {minute['msgpack_bytes_per_reading']:.2f}, "
            f"JSON {minute['json_bytes_per_reading']:.2f}, "
            f"JSON+zstd-3 {minute['json_zstd3_bytes_per_reading']:.2f}"
        )
        print(
            f"{rows - misses}/{rows} rows meet every target; "
            f"{misses} miss at least one (gaps above)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
