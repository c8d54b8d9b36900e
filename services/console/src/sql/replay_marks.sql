-- One session's form events and conversions, for the replay's timeline: focus (the first
-- per form marks its start), submit, invalid (a field refused), conversion.
-- Parameters: {site:String}, {session:String}.
SELECT event_time_ms, kind, form_event, form_key, field_key
FROM events FINAL
WHERE site = {site:String} AND session_id = {session:String}
  AND (kind = 'conversion' OR (kind = 'form_event' AND form_event IN ('focus', 'submit', 'invalid')))
ORDER BY event_time_ms
