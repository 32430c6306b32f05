-- Rollups per minute / hour / day, maintained by materialized views on every insert into
-- readings: a late reading updates its own bucket. AggregatingMergeTree merges partial rows
-- in the background, so readers always aggregate (see docs/storage.md).
-- Quantiles use ClickHouse's DDSketch state (quantileDD, 1 % relative accuracy): the native
-- sketch cannot run inside a materialized view. Only on 1h and 1d: on minute buckets (a few
-- readings each) a sketch costs more than the readings and min/max say as much.

CREATE TABLE IF NOT EXISTS {db}.readings_1m
(
    territory      LowCardinality(String),
    sensor         LowCardinality(String),
    metric         LowCardinality(String),
    bucket         DateTime('UTC'),
    count          SimpleAggregateFunction(sum, UInt64),
    sum            SimpleAggregateFunction(sum, Float64),
    min            SimpleAggregateFunction(min, Float64),
    max            SimpleAggregateFunction(max, Float64),
    bad            SimpleAggregateFunction(sum, UInt64),
    first          AggregateFunction(argMin, Float64, DateTime64(3, 'UTC')),
    last           AggregateFunction(argMax, Float64, DateTime64(3, 'UTC')),
    first_ts       SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_ts        SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    retention_days SimpleAggregateFunction(min, UInt16)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (territory, sensor, metric, bucket)
-- minute detail is for dashboards and recomputation of recent indicators
TTL bucket + toIntervalDay(least(retention_days, 92))
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.readings_1m_mv TO {db}.readings_1m AS
SELECT
    territory, sensor, metric,
    toStartOfMinute(ts) AS bucket,
    count() AS count,
    sum(value) AS sum,
    min(value) AS min,
    max(value) AS max,
    countIf(quality != 0) AS bad,
    argMinState(value, ts) AS first,
    argMaxState(value, ts) AS last,
    min(ts) AS first_ts,
    max(ts) AS last_ts,
    min(retention_days) AS retention_days
FROM {db}.readings
GROUP BY territory, sensor, metric, bucket;

CREATE TABLE IF NOT EXISTS {db}.readings_1h
(
    territory      LowCardinality(String),
    sensor         LowCardinality(String),
    metric         LowCardinality(String),
    bucket         DateTime('UTC'),
    count          SimpleAggregateFunction(sum, UInt64),
    sum            SimpleAggregateFunction(sum, Float64),
    min            SimpleAggregateFunction(min, Float64),
    max            SimpleAggregateFunction(max, Float64),
    bad            SimpleAggregateFunction(sum, UInt64),
    first          AggregateFunction(argMin, Float64, DateTime64(3, 'UTC')),
    last           AggregateFunction(argMax, Float64, DateTime64(3, 'UTC')),
    first_ts       SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_ts        SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    quantiles      AggregateFunction(quantileDD(0.01, 0.5), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (territory, sensor, metric, bucket)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.readings_1h_mv TO {db}.readings_1h AS
SELECT
    territory, sensor, metric,
    toStartOfHour(ts) AS bucket,
    count() AS count,
    sum(value) AS sum,
    min(value) AS min,
    max(value) AS max,
    countIf(quality != 0) AS bad,
    argMinState(value, ts) AS first,
    argMaxState(value, ts) AS last,
    min(ts) AS first_ts,
    max(ts) AS last_ts,
    quantileDDState(0.01, 0.5)(value) AS quantiles
FROM {db}.readings
GROUP BY territory, sensor, metric, bucket;

CREATE TABLE IF NOT EXISTS {db}.readings_1d
(
    territory      LowCardinality(String),
    sensor         LowCardinality(String),
    metric         LowCardinality(String),
    bucket         DateTime('UTC'),
    count          SimpleAggregateFunction(sum, UInt64),
    sum            SimpleAggregateFunction(sum, Float64),
    min            SimpleAggregateFunction(min, Float64),
    max            SimpleAggregateFunction(max, Float64),
    bad            SimpleAggregateFunction(sum, UInt64),
    first          AggregateFunction(argMin, Float64, DateTime64(3, 'UTC')),
    last           AggregateFunction(argMax, Float64, DateTime64(3, 'UTC')),
    first_ts       SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_ts        SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    quantiles      AggregateFunction(quantileDD(0.01, 0.5), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYear(bucket)
ORDER BY (territory, sensor, metric, bucket)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.readings_1d_mv TO {db}.readings_1d AS
SELECT
    territory, sensor, metric,
    toStartOfDay(ts) AS bucket,
    count() AS count,
    sum(value) AS sum,
    min(value) AS min,
    max(value) AS max,
    countIf(quality != 0) AS bad,
    argMinState(value, ts) AS first,
    argMaxState(value, ts) AS last,
    min(ts) AS first_ts,
    max(ts) AS last_ts,
    quantileDDState(0.01, 0.5)(value) AS quantiles
FROM {db}.readings
GROUP BY territory, sensor, metric, bucket;
