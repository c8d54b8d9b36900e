-- Every anonymized event, with the session it belongs to. Written by the sessionizer as
-- events arrive (live), rewritten when a session id changes; the newest `version` wins.
CREATE TABLE IF NOT EXISTS events (
    site {lc},
    day Date,
    event_id String,
    session_id String,
    visitor_id String,
    seq UInt32,
    kind {lc},
    event_time_ms Int64,
    received_at_ms Int64,
    page String,
    title String,
    referrer String,
    form_key String,
    field_key String,
    form_event {lc},
    value {lc},
    conversion_tag String,
    transaction_id String,
    revenue Float64,
    currency {lc},
    tooltip_action {lc},
    trigger String,
    country {lc},
    region {lc},
    browser_family {lc},
    browser_major {lc},
    os_family {lc},
    device_class {lc},
    is_bot UInt8,
    src_partition Int32,
    src_offset Int64,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY day
ORDER BY (site, day, event_id)
{ttl:day};

-- One row per closed session; `day` is the UTC day of its first event.
CREATE TABLE IF NOT EXISTS sessions (
    site {lc},
    day Date,
    session_id String,
    visitor_id String,
    started_ms Int64,
    ended_ms Int64,
    duration_ms Int64,
    events UInt32,
    pageviews UInt32,
    entry_page String,
    exit_page String,
    country {lc},
    region {lc},
    browser_family {lc},
    browser_major {lc},
    os_family {lc},
    device_class {lc},
    is_bot UInt8,
    forms_viewed UInt16,
    forms_started UInt16,
    forms_submitted UInt16,
    converted UInt8,
    revenue Float64,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY day
ORDER BY (site, day, session_id)
{ttl:day};

CREATE VIEW IF NOT EXISTS v_sessions_daily AS
SELECT
    site,
    day,
    count() AS sessions,
    uniqExact(visitor_id) AS visitors,
    sum(pageviews) AS pageviews,
    avg(duration_ms) / 1000 AS avg_session_duration_s
FROM sessions FINAL
GROUP BY site, day;
