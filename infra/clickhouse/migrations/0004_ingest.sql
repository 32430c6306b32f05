-- Ingest bookkeeping: the ledger of stored frames, the quarantine, alarms and gateway status.

-- Ledger of stored frames, written by the same INSERT as the readings (materialized view), so
-- a frame is in the ledger exactly when its readings are. Ingest looks frames up here before
-- inserting; sum(readings) greater than the frame's size would reveal a duplicate.
CREATE TABLE IF NOT EXISTS {db}.frames
(
    territory   LowCardinality(String),
    gateway     LowCardinality(String),
    sequence    UInt64,
    frame_id    SimpleAggregateFunction(any, String),
    readings    SimpleAggregateFunction(sum, UInt64),
    first_ts    SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_ts     SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    ingested_at SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(ingested_at)
ORDER BY (territory, gateway, sequence)
-- a gateway retry after 90 days would not be recognised; the spool never keeps frames that long
TTL toDateTime(ingested_at) + toIntervalDay(90)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.frames_mv TO {db}.frames AS
SELECT
    territory, gateway,
    toUInt64OrZero(arrayElement(splitByChar(':', frame_id), -1)) AS sequence,
    frame_id,
    count() AS readings,
    min(ts) AS first_ts,
    max(ts) AS last_ts,
    max(ingested_at) AS ingested_at
FROM {db}.readings
GROUP BY territory, gateway, frame_id;

CREATE TABLE IF NOT EXISTS {db}.quarantine
(
    received_at    DateTime64(3, 'UTC') DEFAULT now64(3),
    territory      LowCardinality(String),
    gateway        String,
    subject        String,
    kind           LowCardinality(String),
    reason         LowCardinality(String),
    detail         String,
    frame_id       String,
    msg_id         String,
    stream_seq     UInt64,
    quarantine_seq UInt64,
    size           UInt32,
    payload        String CODEC(ZSTD(3))
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (territory, received_at)
TTL toDateTime(received_at) + toIntervalDay(180)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {db}.alarms
(
    territory   LowCardinality(String),
    gateway     LowCardinality(String),
    sensor      String,
    kind        LowCardinality(String),
    time        DateTime64(3, 'UTC'),
    message     String,
    metric      Nullable(String),
    value       Nullable(Float64),
    received_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (territory, gateway, time, sensor, kind);

CREATE TABLE IF NOT EXISTS {db}.gateway_status
(
    territory         LowCardinality(String),
    gateway           LowCardinality(String),
    time              DateTime64(3, 'UTC'),
    readings_accepted UInt64,
    readings_rejected UInt64,
    readings_dropped  UInt64,
    frames_spooled    UInt64,
    frames_sent       UInt64,
    backlog_frames    UInt64,
    bytes_sent        UInt64,
    messages_sent     UInt64,
    radio_wakeups     UInt64,
    energy_mj         Float64,
    battery_pct       Nullable(Float64),
    link              LowCardinality(String),
    agent_version     LowCardinality(String),
    received_at       DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (territory, gateway, time);
