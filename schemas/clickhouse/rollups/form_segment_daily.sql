-- Recomputes the form_segment_daily rows of one site and day for the forms a batch
-- touched, from the deduplicated (session, form) rows. Parameters: {site:String}, {day:Date}, {keys:Array(String)}.
INSERT INTO form_segment_daily
SELECT
    site,
    day,
    form_key,
    device_class,
    country,
    browser_family,
    sum(viewed) AS views,
    sum(started) AS starts,
    sum(submitted) AS submits,
    sum(converted) AS conversions,
    sum(has_duration_to_conversion) AS duration_pairs,
    sum(has_duration_to_conversion * duration_to_conversion_ms) AS duration_to_conversion_ms,
    quantileExactStateIf(start_hesitation_ms, started = 1 AND has_start_hesitation = 1) AS start_hesitation,
    count() AS version
FROM form_sessions FINAL
WHERE site = {site:String} AND day = {day:Date} AND form_key IN {keys:Array(String)}
GROUP BY site, day, form_key, device_class, country, browser_family
