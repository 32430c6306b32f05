-- The register: territories, gateways, sensors and what each sensor kind measures.
-- Written by Store.sync_register(), which rebuilds a side table and swaps it in, so these are
-- plain MergeTree tables that readers query without FINAL.

CREATE TABLE IF NOT EXISTS {db}.territories
(
    code       String,
    name       String,
    kind       LowCardinality(String),
    parent     Nullable(String),
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY code;

CREATE TABLE IF NOT EXISTS {db}.gateways
(
    territory  String,
    id         String,
    name       String,
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (territory, id);

CREATE TABLE IF NOT EXISTS {db}.sensors
(
    territory      String,
    gateway        String,
    id             String,
    kind           LowCardinality(String),
    name           String,
    purpose        String,
    personal_data  Bool,
    legal_basis    String,
    controller     String,
    public         Bool,
    -- effective retention: the sensor's own, else its kind's; drives the TTL of its readings
    retention_days UInt16,
    latitude       Nullable(Float64),
    longitude      Nullable(Float64),
    updated_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (territory, id);

CREATE TABLE IF NOT EXISTS {db}.sensor_metrics
(
    kind        LowCardinality(String),
    metric      String,
    unit        String,
    metric_kind LowCardinality(String),
    min         Float64,
    max         Float64
)
ENGINE = MergeTree
ORDER BY (kind, metric);
