"""TEST HELPER — counts in a chDB data path, from a process of its own (one path per process).

``python chdb_probe.py DATA_PATH DATABASE`` prints a JSON object of counts.
"""

from __future__ import annotations

import json
import sys

import chdb

path, database = sys.argv[1], sys.argv[2]
conn = chdb.connect(path)


def scalar(sql: str) -> int:
    return int(conn.query(sql.replace("{db}", f"`{database}`"), "CSV").bytes().strip() or 0)


print(
    json.dumps(
        {
            "rows": scalar("SELECT count() FROM {db}.readings"),
            "distinct": scalar(
                "SELECT count() FROM "
                "(SELECT DISTINCT frame_id, sensor, metric, ts FROM {db}.readings)"
            ),
            "rollup_1m": scalar("SELECT sum(count) FROM {db}.readings_1m"),
            "rollup_1h": scalar("SELECT sum(count) FROM {db}.readings_1h"),
            "ledger": scalar("SELECT sum(readings) FROM {db}.frames"),
            "frames": scalar("SELECT count() FROM (SELECT DISTINCT frame_id FROM {db}.frames)"),
            # one row per (series, hour, frame): copies of a frame written twice count once
            "sketched": scalar(
                "SELECT sum(c) FROM (SELECT any(count) AS c FROM {db}.sketches_1h "
                "GROUP BY territory, sensor, metric, bucket, frame_id)"
            ),
            "sketch_frames": scalar(
                "SELECT count() FROM (SELECT DISTINCT frame_id FROM {db}.sketches_1h)"
            ),
        }
    )
)
