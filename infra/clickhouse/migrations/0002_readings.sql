-- Raw readings, exactly as pinned in docs/CONTRACTS.md.
-- Partitioned by month of the reading (late data lands in its own month), ordered for the
-- queries of indicators and API: one territory, some sensors/metrics, a time range.
-- non_replicated_deduplication_window keeps the hashes of the last inserted blocks so that
-- an insert retried with the same insert_deduplication_token is a no-op.

CREATE TABLE IF NOT EXISTS {db}.readings
(
    territory      LowCardinality(String),
    gateway        LowCardinality(String),
    sensor         LowCardinality(String),
    metric         LowCardinality(String),
    ts             DateTime64(3, 'UTC'),
    value          Float64,
    quality        UInt8,
    frame_id       String,
    ingested_at    DateTime64(3, 'UTC') DEFAULT now64(3),
    -- Retention of each row comes from its sensor's register entry. It is given at insert
    -- through the EPHEMERAL column (not stored) and kept in a MATERIALIZED one (stored, but
    -- not returned by SELECT *), so the visible columns stay those of the contract.
    retention      UInt16 EPHEMERAL 730,
    retention_days UInt16 MATERIALIZED retention
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (territory, sensor, metric, ts)
TTL toDateTime(ts) + toIntervalDay(retention_days)
SETTINGS non_replicated_deduplication_window = 10000;
