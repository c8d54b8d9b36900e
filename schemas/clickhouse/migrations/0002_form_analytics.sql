-- One row per (session, form): what the visitor did with the form in that session.
-- Times are event times in ms; 0 means "did not happen", and the flags say which apply.
CREATE TABLE IF NOT EXISTS form_sessions (
    site {lc},
    day Date,
    session_id String,
    form_key String,
    device_class {lc},
    country {lc},
    browser_family {lc},
    viewed UInt8,
    started UInt8,
    submitted UInt8,
    converted UInt8,
    revenue Float64,
    first_view_ms Int64,
    first_interaction_ms Int64,
    first_start_ms Int64,
    conversion_ms Int64,
    has_start_hesitation UInt8,
    start_hesitation_ms Int64,
    has_duration_to_conversion UInt8,
    duration_to_conversion_ms Int64,
    abandon_field String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY day
ORDER BY (site, day, form_key, session_id)
{ttl:day};

-- One row per (session, form, field) the visitor touched.
CREATE TABLE IF NOT EXISTS field_interactions (
    site {lc},
    day Date,
    session_id String,
    form_key String,
    field_key String,
    device_class {lc},
    focuses UInt32,
    time_spent_ms Int64,
    has_hesitation UInt8,
    hesitation_ms Int64,
    returns UInt32,
    corrections UInt32,
    errors UInt32,
    blank_at_submit UInt8,
    abandoned UInt8,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY day
ORDER BY (site, day, form_key, field_key, session_id)
{ttl:day};

-- Each conversion event with the form it is attributed to ('' = not attributable).
-- `counts` is 0 for a conversion that repeats a (session, form) pair already counted;
-- revenue is deduplicated per (site, transaction_id) in the views.
CREATE TABLE IF NOT EXISTS conversions (
    site {lc},
    day Date,
    session_id String,
    event_id String,
    form_key String,
    conversion_tag String,
    transaction_id String,
    revenue Float64,
    currency {lc},
    event_time_ms Int64,
    counts UInt8,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY day
ORDER BY (site, day, event_id)
{ttl:day};

CREATE TABLE IF NOT EXISTS tooltip_events (
    site {lc},
    day Date,
    session_id String,
    event_id String,
    trigger String,
    action {lc},
    form_key String,
    event_time_ms Int64,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY day
ORDER BY (site, day, event_id)
{ttl:day};

-- Revenue of each transaction once per site: the earliest conversion carrying it wins;
-- a conversion without a transaction id stands for itself.
CREATE VIEW IF NOT EXISTS v_attributed_revenue AS
SELECT
    site,
    argMin(day, event_time_ms) AS day,
    argMin(form_key, event_time_ms) AS form,
    argMin(revenue, event_time_ms) AS revenue
FROM conversions FINAL
GROUP BY site, if(transaction_id = '', event_id, transaction_id);

CREATE VIEW IF NOT EXISTS v_form_daily AS
SELECT
    f.site AS site,
    f.day AS day,
    f.form AS form,
    views,
    starts,
    submits,
    conversions,
    toInt64(views) - toInt64(starts) AS page_abandoners,
    toInt64(starts) - toInt64(conversions) AS initial_abandoners,
    avg_duration_to_conversion_s,
    median_start_hesitation_ms
FROM
(
    SELECT
        site,
        day,
        form_key AS form,
        sum(viewed) AS views,
        sum(started) AS starts,
        sum(submitted) AS submits,
        sum(converted) AS conversions,
        if(sum(has_duration_to_conversion) = 0, 0, sumIf(duration_to_conversion_ms, has_duration_to_conversion = 1) / sum(has_duration_to_conversion) / 1000) AS avg_duration_to_conversion_s,
        if(sum(started * has_start_hesitation) = 0, 0, quantileExactIf(0.5)(start_hesitation_ms, started = 1 AND has_start_hesitation = 1)) AS median_start_hesitation_ms
    FROM form_sessions FINAL
    WHERE form_key != ''
    GROUP BY site, day, form_key
) AS f;

CREATE VIEW IF NOT EXISTS v_field_daily AS
SELECT
    site,
    day,
    form_key AS form,
    field_key AS field,
    count() AS interactions,
    sum(abandoned) AS abandons,
    avg(time_spent_ms) AS avg_time_spent_ms,
    if(sum(has_hesitation) = 0, 0, quantileExactIf(0.5)(hesitation_ms, has_hesitation = 1)) AS median_hesitation_ms,
    sum(returns) AS returns,
    sum(corrections) AS corrections,
    sum(errors) AS errors
FROM field_interactions FINAL
GROUP BY site, day, form_key, field_key;

CREATE VIEW IF NOT EXISTS v_conversions_daily AS
SELECT
    c.site AS site,
    c.day AS day,
    c.form AS form,
    c.conversions AS conversions,
    r.revenue AS revenue
FROM
(
    SELECT site, day, form_key AS form, sum(counts) AS conversions
    FROM conversions FINAL
    GROUP BY site, day, form_key
) AS c
ANY LEFT JOIN
(
    SELECT site, day, form, sum(revenue) AS revenue
    FROM v_attributed_revenue
    GROUP BY site, day, form
) AS r USING (site, day, form);

CREATE VIEW IF NOT EXISTS v_tooltips_daily AS
SELECT
    site,
    day,
    trigger,
    countIf(action = 'impression') AS impressions,
    countIf(action = 'click') AS clicks,
    countIf(action = 'close') AS closes
FROM tooltip_events FINAL
GROUP BY site, day, trigger;
