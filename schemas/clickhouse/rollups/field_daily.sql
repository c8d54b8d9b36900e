-- Recomputes the field_daily rows (all segments together) of one site and day for the forms
-- a batch touched. Parameters: {site:String}, {day:Date}, {keys:Array(String)} (form keys).
INSERT INTO field_daily
SELECT
    site,
    day,
    form_key,
    field_key,
    count() AS interactions,
    sum(abandoned) AS abandons,
    sum(time_spent_ms) AS time_spent_ms,
    quantileExactStateIf(hesitation_ms, has_hesitation = 1) AS hesitation,
    sum(returns) AS returns,
    sum(corrections) AS corrections,
    sum(errors) AS errors,
    count() AS version
FROM field_interactions FINAL
WHERE site = {site:String} AND day = {day:Date} AND form_key IN {keys:Array(String)}
GROUP BY site, day, form_key, field_key
