-- `events` ordered by visitor within a day, in granules of 256 rows. When a session closes,
-- the sessionizer reads its events back by (site, day, visitor, event id). Ordered by event
-- id alone, a batch's random ids fell in nearly every granule of the day, so every read-back
-- read the whole day: O(day) per batch (BENCHMARKS.md, "The whole chain": 26 million rows
-- read to assemble 16 000 sessions of a 300 000-event day). By visitor, a closing session's
-- events, and any earlier copy of them finalized in another session (an upstream
-- redelivery, which the read-back must see), lie in one granule of each part. An event id
-- always comes with the same visitor id, so the replacing key deduplicates as before.
--
-- The table is copied into a twin ordered the new way, which then takes its name; every step
-- can run again if the migration stopped halfway. Stop the sessionizer while this runs: a
-- row it writes between the copy and the rename is lost until its session is replayed.

DROP TABLE IF EXISTS events_by_event;
DROP TABLE IF EXISTS events_by_visitor;
CREATE TABLE events_by_visitor AS events
ENGINE = ReplacingMergeTree(version)
PARTITION BY day
ORDER BY (site, day, visitor_id, event_id)
{ttl:day}
SETTINGS index_granularity = 256;
INSERT INTO events_by_visitor SELECT * FROM events;
RENAME TABLE events TO events_by_event, events_by_visitor TO events;
DROP TABLE events_by_event;
