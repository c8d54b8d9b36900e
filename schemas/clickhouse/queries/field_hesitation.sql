-- Hesitation by field: for one form, the median time from a field's first focus to its
-- first change (merged from the daily quantile states), with time spent and friction.
-- Longest hesitation first. Reads field_daily (newest version of each row).
-- Parameters: {site:String}, {form:String}, {from:Date}, {to:Date}.
SELECT
    field,
    interactions,
    median_hesitation_ms,
    spent_ms / interactions AS avg_time_spent_ms,
    returns,
    corrections,
    errors
FROM
(
    SELECT
        field_key AS field,
        sum(i) AS interactions,
        quantileExactMerge(0.5)(h) AS median_hesitation_ms,
        sum(t) AS spent_ms,
        sum(r) AS returns,
        sum(c) AS corrections,
        sum(e) AS errors
    FROM
    (
        SELECT
            field_key,
            argMax(field_daily.interactions, version) AS i,
            argMax(hesitation, version) AS h,
            argMax(time_spent_ms, version) AS t,
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
ORDER BY median_hesitation_ms DESC, field
