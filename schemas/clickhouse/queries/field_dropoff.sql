-- Field drop-off ranking: the fields of one form where visitors who started it gave up,
-- most abandons first, with the share of the field's sessions that ended there.
-- Reads field_daily (newest version of each row).
-- Parameters: {site:String}, {form:String}, {from:Date}, {to:Date}.
SELECT
    field,
    abandons,
    interactions,
    round(if(interactions = 0, 0, abandons / interactions), 4) AS abandon_rate
FROM
(
    SELECT field_key AS field, sum(a) AS abandons, sum(i) AS interactions
    FROM
    (
        SELECT
            field_key,
            argMax(field_daily.abandons, version) AS a,
            argMax(field_daily.interactions, version) AS i
        FROM field_daily
        WHERE site = {site:String} AND form_key = {form:String}
          AND day >= {from:Date} AND day <= {to:Date}
        GROUP BY field_key, day
    )
    GROUP BY field_key
)
ORDER BY abandons DESC, field
