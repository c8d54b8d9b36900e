-- The fields of one form over a range, with v_field_daily's columns: interactions,
-- abandons, average time spent, the median hesitation merged from the daily quantile
-- states, returns, corrections and errors. Most interactions first.
-- Reads field_daily (newest version of each row).
-- Parameters: {site:String}, {form:String}, {from:Date}, {to:Date}.
SELECT
    field,
    interactions,
    abandons,
    if(interactions = 0, 0, spent_ms / interactions) AS avg_time_spent_ms,
    median_hesitation_ms,
    returns,
    corrections,
    errors
FROM
(
    SELECT
        field_key AS field,
        sum(i) AS interactions,
        sum(a) AS abandons,
        sum(t) AS spent_ms,
        quantileExactMerge(0.5)(h) AS median_hesitation_ms,
        sum(r) AS returns,
        sum(c) AS corrections,
        sum(e) AS errors
    FROM
    (
        SELECT
            field_key,
            argMax(field_daily.interactions, version) AS i,
            argMax(field_daily.abandons, version) AS a,
            argMax(time_spent_ms, version) AS t,
            argMax(hesitation, version) AS h,
            argMax(field_daily.returns, version) AS r,
            argMax(field_daily.corrections, version) AS c,
            argMax(field_daily.errors, version) AS e
        FROM field_daily
        WHERE site = {site:String} AND form_key = {form:String}
          AND day >= {from:Date} AND day <= {to:Date}
        GROUP BY field_key, day
    )
    GROUP BY field_key
)
ORDER BY interactions DESC, field
