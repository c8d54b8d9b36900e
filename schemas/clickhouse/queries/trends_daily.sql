-- Trends by day: one form's funnel, median start hesitation (the day's quantile state,
-- finalized at its level 0.5) and attributed revenue per day.
-- Reads form_daily and conversions_daily (newest version of each day's row).
-- Parameters: {site:String}, {form:String}, {from:Date}, {to:Date}.
SELECT
    day,
    views,
    starts,
    submits,
    conversions,
    median_start_hesitation_ms,
    revenue
FROM
(
    SELECT
        day,
        argMax(form_daily.views, version) AS views,
        argMax(form_daily.starts, version) AS starts,
        argMax(form_daily.submits, version) AS submits,
        argMax(form_daily.conversions, version) AS conversions,
        finalizeAggregation(argMax(start_hesitation, version)) AS median_start_hesitation_ms
    FROM form_daily
    WHERE site = {site:String} AND form_key = {form:String}
      AND day >= {from:Date} AND day <= {to:Date}
    GROUP BY day
) AS figures
ANY LEFT JOIN
(
    SELECT day, argMax(conversions_daily.revenue, version) AS revenue
    FROM conversions_daily
    WHERE site = {site:String} AND form_key = {form:String}
      AND day >= {from:Date} AND day <= {to:Date}
    GROUP BY day
) AS joined USING (day)
ORDER BY day
