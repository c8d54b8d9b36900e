-- Behaviour events (README, "Event types"): clicks, scroll depth and script errors.
--
-- What each says is kept on its `events` row, so that a closed session read back from
-- ClickHouse holds it like any other event. Defaults are what an event of another kind
-- (or a row written before this migration) carries.
ALTER TABLE events ADD COLUMN IF NOT EXISTS click_x Float64 DEFAULT 0 AFTER trigger;
ALTER TABLE events ADD COLUMN IF NOT EXISTS click_y Int32 DEFAULT 0 AFTER click_x;
ALTER TABLE events ADD COLUMN IF NOT EXISTS viewport_width Int32 DEFAULT 0 AFTER click_y;
ALTER TABLE events ADD COLUMN IF NOT EXISTS element_path String DEFAULT '' AFTER viewport_width;
-- 1: interactive, 2: rage, 4: dead.
ALTER TABLE events ADD COLUMN IF NOT EXISTS click_flags UInt8 DEFAULT 0 AFTER element_path;
-- % of the page height; -1 on every other kind.
ALTER TABLE events ADD COLUMN IF NOT EXISTS scroll_depth Int8 DEFAULT -1 AFTER click_flags;
ALTER TABLE events ADD COLUMN IF NOT EXISTS error_message String DEFAULT '' AFTER scroll_depth;
ALTER TABLE events ADD COLUMN IF NOT EXISTS error_source String DEFAULT '' AFTER error_message;
ALTER TABLE events ADD COLUMN IF NOT EXISTS error_line Int32 DEFAULT 0 AFTER error_source;
ALTER TABLE events ADD COLUMN IF NOT EXISTS error_column Int32 DEFAULT 0 AFTER error_line;
-- `file:line:column`, innermost first.
ALTER TABLE events ADD COLUMN IF NOT EXISTS error_frames Array(String) AFTER error_column;

-- Per session, page (without query or fragment) and heatmap bin: its clicks. A bin is 2 %
-- of the document's width (x_bin 0 to 49) by 25 CSS pixels of its height.
CREATE TABLE IF NOT EXISTS click_bins (
    site {lc},
    day Date,
    session_id String,
    page String,
    device_class {lc},
    x_bin UInt8,
    y_bin UInt32,
    clicks UInt32,
    rage_clicks UInt32,
    dead_clicks UInt32,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY day
ORDER BY (site, day, page, session_id, x_bin, y_bin)
{ttl:day};

-- Per page view of a session: the deepest point of the page reached, in %.
CREATE TABLE IF NOT EXISTS page_scrolls (
    site {lc},
    day Date,
    session_id String,
    page String,
    view UInt32,
    device_class {lc},
    depth UInt8,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY day
ORDER BY (site, day, page, session_id, view)
{ttl:day};

-- Per session, page and error (scrubbed message and script): how often it fired, and what
-- the session then did with its forms: abandoned one it had started, or converted.
CREATE TABLE IF NOT EXISTS session_errors (
    site {lc},
    day Date,
    session_id String,
    page String,
    message String,
    source String,
    device_class {lc},
    errors UInt32,
    first_error_ms Int64,
    abandoned_forms Array(String),
    abandoned_form UInt8,
    converted UInt8,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY day
ORDER BY (site, day, page, message, source, session_id)
{ttl:day};

-- The daily rollups behind the views, recomputed per (site, day, page) by the aggregator
-- from the rows above; `version` is the number of rows a recomputation read.
CREATE TABLE IF NOT EXISTS heatmap_daily (
    site {lc},
    day Date,
    page String,
    device_class {lc},
    x_bin UInt8,
    y_bin UInt32,
    clicks UInt64,
    rage_clicks UInt64,
    dead_clicks UInt64,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (site, page, day, device_class, x_bin, y_bin)
{ttl:day}
SETTINGS index_granularity = 256;

CREATE TABLE IF NOT EXISTS scroll_daily (
    site {lc},
    day Date,
    page String,
    device_class {lc},
    views UInt64,
    reached_25 UInt64,
    reached_50 UInt64,
    reached_75 UInt64,
    reached_100 UInt64,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (site, page, day, device_class)
{ttl:day}
SETTINGS index_granularity = 64;

CREATE TABLE IF NOT EXISTS errors_daily (
    site {lc},
    day Date,
    page String,
    message String,
    source String,
    errors UInt64,
    sessions UInt64,
    sessions_abandoning_a_form UInt64,
    sessions_converting UInt64,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (site, page, day, message, source)
{ttl:day}
SETTINGS index_granularity = 64;

-- The views of wire-v1.md.
CREATE VIEW IF NOT EXISTS v_heatmap_daily AS
SELECT
    site,
    day,
    page,
    device_class,
    x_bin,
    y_bin,
    sum(heatmap_daily.clicks) AS clicks,
    sum(heatmap_daily.rage_clicks) AS rage_clicks,
    sum(heatmap_daily.dead_clicks) AS dead_clicks
FROM heatmap_daily FINAL
GROUP BY site, day, page, device_class, x_bin, y_bin;

CREATE VIEW IF NOT EXISTS v_scroll_daily AS
SELECT
    site,
    day,
    page,
    device_class,
    sum(scroll_daily.views) AS views,
    sum(scroll_daily.reached_25) AS reached_25,
    sum(scroll_daily.reached_50) AS reached_50,
    sum(scroll_daily.reached_75) AS reached_75,
    sum(scroll_daily.reached_100) AS reached_100
FROM scroll_daily FINAL
GROUP BY site, day, page, device_class;

CREATE VIEW IF NOT EXISTS v_errors_daily AS
SELECT
    site,
    day,
    page,
    message,
    source,
    sum(errors_daily.errors) AS errors,
    sum(errors_daily.sessions) AS sessions,
    sum(errors_daily.sessions_abandoning_a_form) AS sessions_abandoning_a_form,
    sum(errors_daily.sessions_converting) AS sessions_converting
FROM errors_daily FINAL
GROUP BY site, day, page, message, source;
