-- Daily rollups partitioned by month instead of by day. A dashboard asks for a year of one
-- form: over daily partitions that opened 365 parts per table, and on 18.16 the per-part
-- cost (every column's files and read buffers) was most of the query (figures in
-- BENCHMARKS.md, `make bench-queries`). Rows stay daily; retention still keeps 90 days: TTL
-- where the server has it, otherwise the retention task drops whole months past the cutoff
-- and deletes the older days of the month that straddles it.
--
-- The per-form tables are now ordered form first, like the segment ones: a form's daily
-- trend read one granule of every form's median states per day when they were ordered by
-- day, and a site-wide question reads every form anyway. Small granules: a median state
-- holds one value per session.
--
-- Each table (fields apart, below) is copied into a monthly-partitioned twin with the same
-- columns, the twin takes its name, the old one is dropped. Every step can run again if the
-- migration stopped halfway (the leftovers are dropped first). Stop the aggregator while
-- this runs: a rollup row it writes between the copy and the rename is lost (it is
-- recomputed the next time a session of that day and form arrives).

DROP TABLE IF EXISTS form_daily_by_day;
DROP TABLE IF EXISTS form_daily_by_month;
CREATE TABLE form_daily_by_month AS form_daily
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (site, form_key, day)
{ttl:day}
SETTINGS index_granularity = 32;
INSERT INTO form_daily_by_month SELECT * FROM form_daily;
RENAME TABLE form_daily TO form_daily_by_day, form_daily_by_month TO form_daily;
DROP TABLE form_daily_by_day;

DROP TABLE IF EXISTS form_segment_daily_by_day;
DROP TABLE IF EXISTS form_segment_daily_by_month;
CREATE TABLE form_segment_daily_by_month AS form_segment_daily
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (site, form_key, day, device_class, country, browser_family)
{ttl:day}
SETTINGS index_granularity = 64;
INSERT INTO form_segment_daily_by_month SELECT * FROM form_segment_daily;
RENAME TABLE form_segment_daily TO form_segment_daily_by_day, form_segment_daily_by_month TO form_segment_daily;
DROP TABLE form_segment_daily_by_day;

-- Fields get the pair the forms and conversions have: `field_segment_daily` per segment, and
-- `field_daily` with all segments together, so that a year of one form's fields reads 5
-- rows a day instead of 5 per segment (on 18.16 deduplicating those rows by version was
-- most of the hesitation query). Both are recomputed from the deduplicated raw rows, as the
-- aggregator does (re-runnable: a second copy of a row has the same version and figures).
CREATE TABLE IF NOT EXISTS field_segment_daily (
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
PARTITION BY toYYYYMM(day)
ORDER BY (site, form_key, field_key, day, device_class, country, browser_family)
{ttl:day}
SETTINGS index_granularity = 64;
INSERT INTO field_segment_daily
SELECT site, day, form_key, field_key, device_class, country, browser_family,
    count(), sum(abandoned), sum(time_spent_ms),
    quantileExactStateIf(hesitation_ms, has_hesitation = 1),
    sum(returns), sum(corrections), sum(errors), count()
FROM field_interactions FINAL
GROUP BY site, day, form_key, field_key, device_class, country, browser_family;
DROP TABLE IF EXISTS field_daily_by_month;
CREATE TABLE field_daily_by_month (
    site {lc},
    day Date,
    form_key String,
    field_key String,
    interactions UInt64,
    abandons UInt64,
    time_spent_ms Int64,
    hesitation AggregateFunction(quantileExact, Int64),
    returns UInt64,
    corrections UInt64,
    errors UInt64,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (site, form_key, field_key, day)
{ttl:day}
SETTINGS index_granularity = 64;
INSERT INTO field_daily_by_month
SELECT site, day, form_key, field_key,
    count(), sum(abandoned), sum(time_spent_ms),
    quantileExactStateIf(hesitation_ms, has_hesitation = 1),
    sum(returns), sum(corrections), sum(errors), count()
FROM field_interactions FINAL
GROUP BY site, day, form_key, field_key;
DROP TABLE IF EXISTS field_daily_by_day;
RENAME TABLE field_daily TO field_daily_by_day, field_daily_by_month TO field_daily;
DROP TABLE field_daily_by_day;

DROP TABLE IF EXISTS conversions_daily_by_day;
DROP TABLE IF EXISTS conversions_daily_by_month;
CREATE TABLE conversions_daily_by_month AS conversions_daily
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (site, form_key, day)
{ttl:day}
SETTINGS index_granularity = 256;
INSERT INTO conversions_daily_by_month SELECT * FROM conversions_daily;
RENAME TABLE conversions_daily TO conversions_daily_by_day, conversions_daily_by_month TO conversions_daily;
DROP TABLE conversions_daily_by_day;

DROP TABLE IF EXISTS conversion_segment_daily_by_day;
DROP TABLE IF EXISTS conversion_segment_daily_by_month;
CREATE TABLE conversion_segment_daily_by_month AS conversion_segment_daily
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (site, form_key, day, device_class, country, browser_family)
{ttl:day}
SETTINGS index_granularity = 64;
INSERT INTO conversion_segment_daily_by_month SELECT * FROM conversion_segment_daily;
RENAME TABLE conversion_segment_daily TO conversion_segment_daily_by_day, conversion_segment_daily_by_month TO conversion_segment_daily;
DROP TABLE conversion_segment_daily_by_day;

DROP TABLE IF EXISTS tooltips_daily_by_day;
DROP TABLE IF EXISTS tooltips_daily_by_month;
CREATE TABLE tooltips_daily_by_month AS tooltips_daily
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (site, trigger, day, device_class, country, browser_family)
{ttl:day}
SETTINGS index_granularity = 64;
INSERT INTO tooltips_daily_by_month SELECT * FROM tooltips_daily;
RENAME TABLE tooltips_daily TO tooltips_daily_by_day, tooltips_daily_by_month TO tooltips_daily;
DROP TABLE tooltips_daily_by_day;
