-- Where each field of one form stands on its page, from the events of the range's last 7
-- days: a week shows the page as it is now, and bounds what a busy site's page reads.
-- A field that moved between versions of the page takes its smallest position.
-- Reads events (event data); -1 marks rows without a position.
-- Parameters: {site:String}, {form:String}, {to:Date}, {since:Date}.
SELECT field_key AS field, min(field_order) AS position
FROM events
WHERE site = {site:String} AND day >= {since:Date} AND day <= {to:Date}
  AND form_key = {form:String} AND field_order >= 0
GROUP BY field_key
