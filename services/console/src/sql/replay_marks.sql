-- One session's form events and conversions, for the replay's timeline: focus (the first
-- per form marks its start), submit, invalid (a field refused), conversion. The newest
-- version of each event, and only those the session holds now.
-- Parameters: {site:String}, {session:String}.
-- (Aliases apart from the columns: 18.16 would read them in WHERE. GLOBAL: the subquery
-- runs where the query does, not on the servers a site database's tables forward to.)
SELECT
    min(event_time_ms) AS at,
    any(kind) AS event_kind,
    any(form_event) AS what,
    any(form_key) AS form,
    any(field_key) AS field
FROM events
WHERE site = {site:String}
  AND event_id GLOBAL IN (SELECT event_id FROM events WHERE site = {site:String} AND session_id = {session:String})
  AND (kind = 'conversion' OR (kind = 'form_event' AND form_event IN ('focus', 'submit', 'invalid')))
GROUP BY event_id
HAVING argMax(session_id, version) = {session:String}
ORDER BY at
