-- One form's funnel over a range per segment (SEGMENT: device_class, browser_family or
-- country, put in by the console from a fixed list), with the median start hesitation.
-- Reads form_segment_daily (newest version of each row).
-- Parameters: {site:String}, {form:String}, {from:Date}, {to:Date}.
SELECT
    segment,
    sum(v) AS views,
    sum(s) AS starts,
    sum(sb) AS submits,
    sum(c) AS conversions,
    quantileExactMerge(0.5)(h) AS median_start_hesitation_ms
FROM
(
    SELECT
        SEGMENT AS segment,
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
GROUP BY segment
ORDER BY views DESC, segment
