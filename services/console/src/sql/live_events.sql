-- The site's latest events, newest first: what the live page lists seconds after a
-- visitor acts (events are written when the sessionizer reads them, long before their
-- session closes). Never a typed value: `value` holds only '' or '*'.
-- Parameters: {site:String}, {since_ms:Int64}, {day_from:Date}.
SELECT
    toString(toDateTime(intDiv(event_time_ms, 1000))) AS time,
    kind,
    page,
    form_key AS form,
    field_key AS field,
    form_event,
    device_class,
    country
FROM events
WHERE site = {site:String} AND day >= {day_from:Date} AND event_time_ms >= {since_ms:Int64}
ORDER BY event_time_ms DESC, event_id
LIMIT 200
