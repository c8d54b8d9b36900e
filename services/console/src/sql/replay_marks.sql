-- One session's form events and conversions, for the replay's timeline: focus (the first
-- per form marks its start), submit, invalid (a field refused), conversion. The newest
-- version of each event, and only those the session holds now.
-- Parameters: {site:String}, {session:String}.
SELECT
    min(event_time_ms) AS event_time_ms,
    any(kind) AS kind,
    any(form_event) AS form_event,
    any(form_key) AS form_key,
    any(field_key) AS field_key
FROM events
WHERE site = {site:String}
  AND event_id IN (SELECT event_id FROM events WHERE site = {site:String} AND session_id = {session:String})
  AND (kind = 'conversion' OR (kind = 'form_event' AND form_event IN ('focus', 'submit', 'invalid')))
GROUP BY event_id
HAVING argMax(session_id, version) = {session:String}
ORDER BY event_time_ms
