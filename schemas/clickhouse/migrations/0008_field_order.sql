-- Where each form event's field stands on its page (the tag's `field.order`), so that a
-- form's fields can be listed in the order a visitor meets them. -1 for events without a
-- field, and for rows written before this column existed.
ALTER TABLE events ADD COLUMN IF NOT EXISTS field_order Int32 DEFAULT -1 AFTER field_key;
