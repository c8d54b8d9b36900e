-- One session's replay, in one query: the batches of its pages (the session's page_view
-- events, whose ids the batches carry), pages in the order they were seen, each page's
-- batches in sequence. The events are gzipped JSON, read as hex. No FINAL (it does not pass
-- the site databases' Distributed tables): the newest version of each batch, and the
-- session each page view belongs to now. GLOBAL: the subqueries run where the query does,
-- not on the servers a site database's tables forward to.
-- Parameters: {site:String}, {session:String}.
SELECT hex(events) AS events, skew_ms, page_ms
FROM
(
    SELECT page_view_id, seq, events, skew_ms
    FROM replay_batches
    WHERE site = {site:String}
      AND page_view_id GLOBAL IN (SELECT event_id FROM events WHERE site = {site:String} AND session_id = {session:String} AND kind = 'page_view')
    ORDER BY version DESC
    LIMIT 1 BY page_view_id, seq
) AS batches
GLOBAL ANY INNER JOIN
(
    SELECT event_id AS page_view_id, min(event_time_ms) AS page_ms
    FROM events
    WHERE site = {site:String} AND kind = 'page_view'
      AND event_id GLOBAL IN (SELECT event_id FROM events WHERE site = {site:String} AND session_id = {session:String} AND kind = 'page_view')
    GROUP BY event_id
    HAVING argMax(session_id, version) = {session:String}
) AS views USING (page_view_id)
ORDER BY page_ms, page_view_id, seq
