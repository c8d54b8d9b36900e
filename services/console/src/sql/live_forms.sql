-- Provisional form figures since the start of a UTC day, from events (sessions still open
-- included): sessions that viewed, started (changed a field's data) and submitted each
-- form, and when the last event came. The final figures follow when the sessions close.
-- Parameters: {site:String}, {day:Date}.
SELECT
    form_key AS form,
    uniqExactIf(session_id, kind = 'form_view') AS views,
    uniqExactIf(session_id, kind = 'form_event' AND form_event IN ('input', 'change', 'autofill')) AS starts,
    uniqExactIf(session_id, kind = 'form_event' AND form_event = 'submit') AS submits,
    max(event_time_ms) AS last_event_ms
FROM events
WHERE site = {site:String} AND day >= {day:Date} AND form_key != ''
GROUP BY form_key
ORDER BY views DESC, form
