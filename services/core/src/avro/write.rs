//! Avro binary written straight from the event records, field by field in schema order.
//!
//! The schema-driven serializer (`serde_avro_fast`) matches every field by name, every
//! enum symbol through a hash map and every union branch by type, on every record: it was
//! 40 % of the instructions of the collector's pure path, and the same records are written
//! on every hop of the chain. These writers know the layout instead. They are held to the
//! schemas, not trusted: property tests (`avro/tests.rs`) require their bytes to equal the
//! schema-driven serializer's and apache-avro's on generated records of every shape, so a
//! field added to a schema and a struct but not here fails them.

use crate::model::{
    AnonEvent, Click, Device, ErrorFrame, EventBody, EventKind, FieldRef, Form, FormEventKind,
    FormField, RawEvent, ScriptError, TooltipAction,
};

/// A record that writes its own Avro datum (no header) in its schema's field order.
pub(crate) trait WriteDatum {
    fn write_datum(&self, out: &mut Vec<u8>);
}

/// `long` and `int`: zig-zag, then base-128 varint, low group first.
fn long(out: &mut Vec<u8>, v: i64) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn int(out: &mut Vec<u8>, v: i32) {
    long(out, i64::from(v));
}

fn string(out: &mut Vec<u8>, s: &str) {
    long(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

fn double(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn boolean(out: &mut Vec<u8>, b: bool) {
    out.push(u8::from(b));
}

/// `["null", T]`: branch 0 alone, or branch 1 followed by the value.
fn optional<T>(out: &mut Vec<u8>, value: Option<T>, write: impl FnOnce(&mut Vec<u8>, T)) {
    match value {
        None => long(out, 0),
        Some(v) => {
            long(out, 1);
            write(out, v);
        }
    }
}

fn optional_string(out: &mut Vec<u8>, value: &Option<String>) {
    optional(out, value.as_deref(), string);
}

/// An enum is the index of its symbol; the Rust variants are declared in the schema's order.
fn symbol(out: &mut Vec<u8>, index: usize) {
    long(out, index as i64);
}

fn event_kind(out: &mut Vec<u8>, kind: EventKind) {
    symbol(out, kind as usize);
}

impl WriteDatum for FormField {
    fn write_datum(&self, out: &mut Vec<u8>) {
        string(out, &self.name);
        string(out, &self.label);
        string(out, &self.id);
        string(out, &self.tag);
        string(out, &self.input_type);
        int(out, self.order);
        boolean(out, self.visible);
        string(out, &self.group);
    }
}

impl WriteDatum for Form {
    fn write_datum(&self, out: &mut Vec<u8>) {
        string(out, &self.name);
        string(out, &self.id);
        int(out, self.order);
        optional_string(out, &self.html_id);
        optional_string(out, &self.action);
        optional_string(out, &self.title);
        optional(out, self.visible, boolean);
        array(out, &self.fields);
    }
}

/// Arrays are blocks: one block of every item, then the empty block that ends them.
fn array<T: WriteDatum>(out: &mut Vec<u8>, items: &[T]) {
    if !items.is_empty() {
        long(out, items.len() as i64);
        for item in items {
            item.write_datum(out);
        }
    }
    long(out, 0);
}

impl WriteDatum for FieldRef {
    fn write_datum(&self, out: &mut Vec<u8>) {
        string(out, &self.name);
        string(out, &self.id);
        string(out, &self.tag);
        string(out, &self.input_type);
        int(out, self.order);
        string(out, &self.label);
    }
}

impl WriteDatum for EventBody {
    fn write_datum(&self, out: &mut Vec<u8>) {
        optional_string(out, &self.page);
        optional_string(out, &self.title);
        optional_string(out, &self.referrer);
        optional(out, self.form.as_ref(), |out, f| f.write_datum(out));
        optional(out, self.form_event, |out, e: FormEventKind| {
            symbol(out, e as usize)
        });
        optional(out, self.seq, long);
        optional(out, self.field.as_ref(), |out, f| f.write_datum(out));
        optional_string(out, &self.value);
        optional_string(out, &self.conversion_tag);
        optional_string(out, &self.transaction_id);
        optional(out, self.revenue, double);
        optional_string(out, &self.currency);
        optional(out, self.tooltip_action, |out, a: TooltipAction| {
            symbol(out, a as usize)
        });
        optional_string(out, &self.trigger);
        optional_string(out, &self.tooltip_id);
        optional(out, self.click.as_ref(), |out, c| c.write_datum(out));
        optional(out, self.scroll_depth, int);
        optional(out, self.error.as_ref(), |out, e| e.write_datum(out));
    }
}

impl WriteDatum for Click {
    fn write_datum(&self, out: &mut Vec<u8>) {
        double(out, self.x);
        int(out, self.y);
        int(out, self.viewport_width);
        string(out, &self.path);
        boolean(out, self.interactive);
        boolean(out, self.rage);
        boolean(out, self.dead);
    }
}

impl WriteDatum for ErrorFrame {
    fn write_datum(&self, out: &mut Vec<u8>) {
        string(out, &self.file);
        int(out, self.line);
        int(out, self.column);
    }
}

impl WriteDatum for ScriptError {
    fn write_datum(&self, out: &mut Vec<u8>) {
        string(out, &self.message);
        string(out, &self.source);
        int(out, self.line);
        int(out, self.column);
        array(out, &self.frames);
    }
}

impl WriteDatum for Device {
    fn write_datum(&self, out: &mut Vec<u8>) {
        string(out, &self.country);
        string(out, &self.region);
        string(out, &self.browser_family);
        string(out, &self.browser_major);
        string(out, &self.os_family);
        string(out, &self.device_class);
        boolean(out, self.is_bot);
    }
}

impl WriteDatum for RawEvent {
    fn write_datum(&self, out: &mut Vec<u8>) {
        string(out, &self.event_id);
        string(out, &self.site);
        event_kind(out, self.kind);
        long(out, self.ts_ms);
        long(out, self.sent_at_ms);
        long(out, self.received_at_ms);
        long(out, self.event_time_ms);
        self.body.write_datum(out);
        string(out, &self.ip);
        string(out, &self.user_agent);
    }
}

impl WriteDatum for AnonEvent {
    fn write_datum(&self, out: &mut Vec<u8>) {
        string(out, &self.event_id);
        string(out, &self.site);
        string(out, &self.visitor_id);
        event_kind(out, self.kind);
        long(out, self.event_time_ms);
        long(out, self.received_at_ms);
        self.body.write_datum(out);
        self.device.write_datum(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn long_bytes(v: i64) -> Vec<u8> {
        let mut out = Vec::new();
        long(&mut out, v);
        out
    }

    /// The examples of the Avro specification, and the ends of the range.
    #[test]
    fn longs_are_zig_zag_varints() {
        assert_eq!(long_bytes(0), [0x00]);
        assert_eq!(long_bytes(-1), [0x01]);
        assert_eq!(long_bytes(1), [0x02]);
        assert_eq!(long_bytes(-2), [0x03]);
        assert_eq!(long_bytes(2), [0x04]);
        assert_eq!(long_bytes(-64), [0x7f]);
        assert_eq!(long_bytes(64), [0x80, 0x01]);
        let mut max = vec![0xfe];
        max.extend([0xff; 8]);
        max.push(0x01);
        assert_eq!(long_bytes(i64::MAX), max);
        let mut min = vec![0xff; 9];
        min.push(0x01);
        assert_eq!(long_bytes(i64::MIN), min);
    }
}
