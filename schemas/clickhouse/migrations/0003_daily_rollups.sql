-- Daily rollups for dashboards, and the four daily views rebuilt on them. Each rollup
-- carries the segments device class, country and browser family; the form and conversion
-- figures are also kept per form without segments (`form_daily`, `conversions_daily`),
-- because a site-wide question over a year must not read every segment row (`FINAL` on
-- 18.16 reads in one thread). Segment rollups are ordered form first and use small index
-- granules, so one form's year reads a few granules per daily partition.
--
-- Why ReplacingMergeTree and not a materialized view into Summing/AggregatingMergeTree: a
-- session delivered twice (at least once) would fire such a view twice and count twice.
-- Instead the aggregator, after writing a batch's rows, recomputes the rollup rows of every
-- (site, day, form) the batch touched from the deduplicated rows (`FINAL`). A rollup row's
-- `version` is the number of rows it was computed from: rows only ever arrive (retention
-- drops whole days), so a recomputation that saw more rows always wins, and two that saw
-- the same rows wrote the same figures. Medians are kept as `quantileExact` states.

-- Segments for the field, conversion and tooltip rows (old rows keep '').
ALTER TABLE field_interactions ADD COLUMN IF NOT EXISTS country {lc} AFTER device_class;
ALTER TABLE field_interactions ADD COLUMN IF NOT EXISTS browser_family {lc} AFTER country;
ALTER TABLE conversions ADD COLUMN IF NOT EXISTS device_class {lc} AFTER form_key;
ALTER TABLE conversions ADD COLUMN IF NOT EXISTS country {lc} AFTER device_class;
ALTER TABLE conversions ADD COLUMN IF NOT EXISTS browser_family {lc} AFTER country;
ALTER TABLE tooltip_events ADD COLUMN IF NOT EXISTS device_class {lc} AFTER form_key;
ALTER TABLE tooltip_events ADD COLUMN IF NOT EXISTS country {lc} AFTER device_class;
ALTER TABLE tooltip_events ADD COLUMN IF NOT EXISTS browser_family {lc} AFTER country;

-- Per (site, day, form): the form funnel. `duration_to_conversion_ms` is the sum over the
-- `duration_pairs` (session, form) pairs that converted after a start.
CREATE TABLE IF NOT EXISTS form_daily (
    site {lc},
    day Date,
    form_key String,
    views UInt64,
    starts UInt64,
    submits UInt64,
    conversions UInt64,
    duration_pairs UInt64,
    duration_to_conversion_ms Int64,
    start_hesitation AggregateFunction(quantileExact, Int64),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY day
ORDER BY (site, day, form_key)
{ttl:day}
SETTINGS index_granularity = 256;

-- The same per segment.
CREATE TABLE IF NOT EXISTS form_segment_daily (
    site {lc},
    day Date,
    form_key String,
    device_class {lc},
    country {lc},
    browser_family {lc},
    views UInt64,
    starts UInt64,
    submits UInt64,
    conversions UInt64,
    duration_pairs UInt64,
    duration_to_conversion_ms Int64,
    start_hesitation AggregateFunction(quantileExact, Int64),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY day
ORDER BY (site, form_key, day, device_class, country, browser_family)
{ttl:day}
SETTINGS index_granularity = 64;

-- Per (site, day, form, field, segment): field friction. `interactions` counts sessions.
CREATE TABLE IF NOT EXISTS field_daily (
    site {lc},
    day Date,
    form_key String,
    field_key String,
    device_class {lc},
    country {lc},
    browser_family {lc},
    interactions UInt64,
    abandons UInt64,
    time_spent_ms Int64,
    hesitation AggregateFunction(quantileExact, Int64),
    returns UInt64,
    corrections UInt64,
    errors UInt64,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY day
ORDER BY (site, form_key, field_key, day, device_class, country, browser_family)
{ttl:day}
SETTINGS index_granularity = 64;

-- Per (site, day, attributed form): conversions, and revenue with each transaction id
-- counted once per site (on its earliest conversion). `version` also counts the other
-- conversions of the same transactions, so a late earlier one wins the revenue.
CREATE TABLE IF NOT EXISTS conversions_daily (
    site {lc},
    day Date,
    form_key String,
    conversions UInt64,
    revenue Float64,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY day
ORDER BY (site, day, form_key)
{ttl:day}
SETTINGS index_granularity = 256;

-- The same per segment.
CREATE TABLE IF NOT EXISTS conversion_segment_daily (
    site {lc},
    day Date,
    form_key String,
    device_class {lc},
    country {lc},
    browser_family {lc},
    conversions UInt64,
    revenue Float64,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY day
ORDER BY (site, form_key, day, device_class, country, browser_family)
{ttl:day}
SETTINGS index_granularity = 64;

CREATE TABLE IF NOT EXISTS tooltips_daily (
    site {lc},
    day Date,
    trigger String,
    device_class {lc},
    country {lc},
    browser_family {lc},
    impressions UInt64,
    clicks UInt64,
    closes UInt64,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY day
ORDER BY (site, trigger, day, device_class, country, browser_family)
{ttl:day}
SETTINGS index_granularity = 64;

-- The views of wire-v1.md, now reading the rollups (FINAL: the latest recomputation).
DROP TABLE IF EXISTS v_form_daily;
DROP TABLE IF EXISTS v_field_daily;
DROP TABLE IF EXISTS v_conversions_daily;
DROP TABLE IF EXISTS v_tooltips_daily;
DROP TABLE IF EXISTS v_attributed_revenue;

CREATE VIEW IF NOT EXISTS v_form_daily AS
SELECT
    site,
    day,
    form,
    views,
    starts,
    submits,
    conversions,
    toInt64(views) - toInt64(starts) AS page_abandoners,
    toInt64(starts) - toInt64(conversions) AS initial_abandoners,
    if(pairs = 0, 0, pairs_ms / pairs / 1000) AS avg_duration_to_conversion_s,
    median_start_hesitation_ms
FROM
(
    SELECT
        site,
        day,
        form_key AS form,
        sum(form_daily.views) AS views,
        sum(form_daily.starts) AS starts,
        sum(form_daily.submits) AS submits,
        sum(form_daily.conversions) AS conversions,
        sum(duration_pairs) AS pairs,
        sum(duration_to_conversion_ms) AS pairs_ms,
        quantileExactMerge(0.5)(start_hesitation) AS median_start_hesitation_ms
    FROM form_daily FINAL
    GROUP BY site, day, form_key
);

CREATE VIEW IF NOT EXISTS v_field_daily AS
SELECT
    site,
    day,
    form,
    field,
    interactions,
    abandons,
    spent_ms / interactions AS avg_time_spent_ms,
    median_hesitation_ms,
    returns,
    corrections,
    errors
FROM
(
    SELECT
        site,
        day,
        form_key AS form,
        field_key AS field,
        sum(field_daily.interactions) AS interactions,
        sum(field_daily.abandons) AS abandons,
        sum(time_spent_ms) AS spent_ms,
        quantileExactMerge(0.5)(hesitation) AS median_hesitation_ms,
        sum(field_daily.returns) AS returns,
        sum(field_daily.corrections) AS corrections,
        sum(field_daily.errors) AS errors
    FROM field_daily FINAL
    GROUP BY site, day, form_key, field_key
);

CREATE VIEW IF NOT EXISTS v_conversions_daily AS
SELECT
    site,
    day,
    form_key AS form,
    sum(conversions_daily.conversions) AS conversions,
    sum(conversions_daily.revenue) AS revenue
FROM conversions_daily FINAL
GROUP BY site, day, form_key;

CREATE VIEW IF NOT EXISTS v_tooltips_daily AS
SELECT
    site,
    day,
    trigger,
    sum(tooltips_daily.impressions) AS impressions,
    sum(tooltips_daily.clicks) AS clicks,
    sum(tooltips_daily.closes) AS closes
FROM tooltips_daily FINAL
GROUP BY site, day, trigger
