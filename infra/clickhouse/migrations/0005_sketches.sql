-- Native quantile sketches per frame, series (sensor, metric) and hour, written by ingest with
-- the window statistics of the native aggregation kernel (bocage_native.aggregate). One row per
-- (territory, sensor, metric, bucket, frame_id): a frame delivered or inserted again writes the
-- same key with the same content, which ReplacingMergeTree collapses on merge; readers group by
-- frame_id (one row per frame and bucket) so that copies not merged yet never count twice.
-- Insert deduplication (same token scheme as readings) makes a retried insert a no-op on top.
-- No TTL: like readings_1h, aggregates per sensor and hour carry no personal data.

CREATE TABLE IF NOT EXISTS {db}.sketches_1h
(
    territory   LowCardinality(String),
    sensor      LowCardinality(String),
    metric      LowCardinality(String),
    bucket      DateTime('UTC'),
    frame_id    String,
    count       UInt64,
    min         Float64,
    max         Float64,
    sum         Float64,
    sketch      String,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (territory, sensor, metric, bucket, frame_id)
SETTINGS non_replicated_deduplication_window = 10000;
