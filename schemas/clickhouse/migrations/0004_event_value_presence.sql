-- Whether an event carried a `value`. An empty field (`""`) and no value at all (a focus)
-- are different facts for corrections and returns, and the sessionizer reads a session's
-- events back from this table when the session closes. Rows written before this column
-- existed are taken to carry a value when their text is not empty.
ALTER TABLE events ADD COLUMN IF NOT EXISTS value_present UInt8 DEFAULT toUInt8(value != '') AFTER value;
