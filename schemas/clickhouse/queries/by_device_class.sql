-- By device class: one form's funnel over a date range per device class, with the median
-- start hesitation and the revenue attributed to the form (a conversion attributed to the
-- form comes from a session that interacted with it, so its segment is on the form side).
-- Reads form_segment_daily and conversion_segment_daily (newest version of each row).
-- Parameters: {site:String}, {form:String}, {from:Date}, {to:Date}.
SELECT
    device_class,
    views,
    starts,
    submits,
    conversions,
    median_start_hesitation_ms,
    revenue
FROM
(
    SELECT
        device_class,
        sum(v) AS views,
        sum(s) AS starts,
        sum(sb) AS submits,
        sum(c) AS conversions,
        quantileExactMerge(0.5)(h) AS median_start_hesitation_ms
    FROM
    (
        SELECT
            device_class,
            argMax(form_segment_daily.views, version) AS v,
            argMax(form_segment_daily.starts, version) AS s,
            argMax(form_segment_daily.submits, version) AS sb,
            argMax(form_segment_daily.conversions, version) AS c,
            argMax(start_hesitation, version) AS h
        FROM form_segment_daily
        WHERE site = {site:String} AND form_key = {form:String}
          AND day >= {from:Date} AND day <= {to:Date}
        GROUP BY day, device_class, country, browser_family
    )
    GROUP BY device_class
) AS figures
ANY LEFT JOIN
(
    SELECT device_class, sum(r) AS revenue
    FROM
    (
        SELECT device_class, argMax(conversion_segment_daily.revenue, version) AS r
        FROM conversion_segment_daily
        WHERE site = {site:String} AND form_key = {form:String}
          AND day >= {from:Date} AND day <= {to:Date}
        GROUP BY day, device_class, country, browser_family
    )
    GROUP BY device_class
) AS joined USING (device_class)
ORDER BY device_class
