-- One session's replay, in one query: the batches of its pages (the session's page_view
-- events, whose ids the batches carry), pages in the order they were seen, each page's
-- batches in sequence. The events are gzipped JSON, read as hex. A batch's day is the day
-- it was received: the session's days and the day after.
-- Parameters: {site:String}, {session:String}.
SELECT hex(events) AS events, skew_ms, page_ms
FROM replay_batches FINAL
ANY INNER JOIN
(
    SELECT event_id AS page_view_id, event_time_ms AS page_ms
    FROM events FINAL
    WHERE site = {site:String} AND session_id = {session:String} AND kind = 'page_view'
) AS views USING (page_view_id)
WHERE site = {site:String}
  AND day >= (SELECT min(day) FROM events WHERE site = {site:String} AND session_id = {session:String})
  AND day <= (SELECT max(day) + 1 FROM events WHERE site = {site:String} AND session_id = {session:String})
ORDER BY page_ms, page_view_id, seq
