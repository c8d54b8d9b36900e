//! The batch as sent: its envelope and events as JSON types, and the two ways of reading
//! them.
//!
//! Most batches are well formed: decoding the events while the envelope is read saves a
//! second scan of every event's JSON (the envelope-first path skips each event to find its
//! end, then parses it on its own). Anything the one-pass read does not take (bad JSON, a
//! wrong type, a non-object event, too many events) sends the body down the event-by-event
//! path, which names each problem and keeps the rest: that path decides every refusal, so
//! the two can never disagree about what is accepted.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::checks::json_error;
use super::Invalid;

/// The batch envelope, before its events are looked at.
#[derive(Debug, Deserialize)]
pub(super) struct Envelope<'a> {
    pub(super) site: String,
    pub(super) sent_at: String,
    #[serde(borrow)]
    pub(super) events: Vec<&'a RawValue>,
}

/// One event as sent. What is only looked at (never stored as sent) borrows from the body.
#[derive(Deserialize)]
pub(super) struct WireEvent<'a> {
    #[serde(borrow)]
    pub(super) id: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    pub(super) kind: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) ts: Cow<'a, str>,
    pub(super) page: Option<String>,
    pub(super) title: Option<String>,
    pub(super) referrer: Option<String>,
    pub(super) form: Option<WireForm>,
    #[serde(borrow)]
    pub(super) event: Option<Cow<'a, str>>,
    pub(super) seq: Option<i64>,
    pub(super) field: Option<WireField>,
    #[serde(borrow)]
    pub(super) value: Option<Cow<'a, str>>,
    pub(super) tag: Option<String>,
    pub(super) transaction_id: Option<String>,
    pub(super) revenue: Option<f64>,
    pub(super) currency: Option<String>,
    #[serde(borrow)]
    pub(super) action: Option<Cow<'a, str>>,
    pub(super) trigger: Option<String>,
    #[serde(borrow)]
    pub(super) tooltip_id: Option<Cow<'a, str>>,
    pub(super) x: Option<f64>,
    pub(super) y: Option<i64>,
    pub(super) viewport_width: Option<i64>,
    pub(super) path: Option<String>,
    pub(super) interactive: Option<bool>,
    pub(super) rage: Option<bool>,
    pub(super) dead: Option<bool>,
    pub(super) depth: Option<i64>,
    pub(super) message: Option<String>,
    pub(super) source: Option<String>,
    pub(super) line: Option<i64>,
    pub(super) column: Option<i64>,
    pub(super) frames: Option<Vec<WireFrame>>,
}

/// One frame of a `js_error`'s stack.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct WireFrame {
    pub(super) file: String,
    pub(super) line: i64,
    pub(super) column: i64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct WireForm {
    pub(super) name: String,
    pub(super) id: String,
    pub(super) html_id: Option<String>,
    pub(super) action: Option<String>,
    pub(super) order: i32,
    pub(super) title: Option<String>,
    pub(super) visible: Option<bool>,
    pub(super) fields: Option<Vec<WireField>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct WireField {
    pub(super) name: String,
    pub(super) label: String,
    pub(super) id: String,
    pub(super) tag: String,
    #[serde(rename = "type")]
    pub(super) input_type: String,
    pub(super) order: i32,
    pub(super) visible: Option<bool>,
    pub(super) group: String,
}

/// One event's JSON text, decoded on its own: a problem here refuses this event only.
pub(super) fn decode_event(json: &str) -> Result<WireEvent<'_>, Invalid> {
    if !json.trim_start().starts_with('{') {
        return Err(("malformed", "an event must be a JSON object".into()));
    }
    serde_json::from_str(json).map_err(|e| ("malformed", json_error::<WireEvent>(json, e)))
}

/// The envelope's fields as sent, the events decoded.
pub(super) struct WholeBatch<'a> {
    pub site: String,
    pub sent_at: String,
    pub events: Vec<WireEvent<'a>>,
}

/// `None` when the body is not a batch of well-formed events of at most `max_events`.
pub(super) fn decode_whole(text: &str, max_events: usize) -> Option<WholeBatch<'_>> {
    let mut de = serde_json::Deserializer::from_str(text);
    let batch = BatchSeed { max_events }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(batch)
}

struct BatchSeed {
    max_events: usize,
}

impl<'de> DeserializeSeed<'de> for BatchSeed {
    type Value = WholeBatch<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        // A map only: a derived struct would also read an array as its fields in order.
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BatchSeed {
    type Value = WholeBatch<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a batch object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut site, mut sent_at, mut events) = (None, None, None);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            // A repeated field is left to the event-by-event path, which refuses it.
            match &*key {
                "site" if site.is_none() => site = Some(map.next_value()?),
                "sent_at" if sent_at.is_none() => sent_at = Some(map.next_value()?),
                "events" if events.is_none() => {
                    events = Some(map.next_value_seed(EventsSeed {
                        max_events: self.max_events,
                    })?)
                }
                "site" | "sent_at" | "events" => return Err(de::Error::custom("field repeated")),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        match (site, sent_at, events) {
            (Some(site), Some(sent_at), Some(events)) => Ok(WholeBatch {
                site,
                sent_at,
                events,
            }),
            _ => Err(de::Error::custom("a field is missing")),
        }
    }
}

struct EventsSeed {
    max_events: usize,
}

impl<'de> DeserializeSeed<'de> for EventsSeed {
    type Value = Vec<WireEvent<'de>>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EventsSeed {
    type Value = Vec<WireEvent<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // Room for a typical batch up front (growing moves every event decoded so far). At
        // most one event past the bound is decoded: a 64 KiB body of `{}` would otherwise
        // be ~20 000 events in memory.
        let mut events = Vec::with_capacity(self.max_events.min(32));
        while let Some(event) = seq.next_element_seed(ObjectOnly(PhantomData))? {
            if events.len() == self.max_events {
                return Err(de::Error::custom("too many events"));
            }
            events.push(event);
        }
        Ok(events)
    }
}

/// A `WireEvent` read from a JSON object only (the event-by-event path refuses the rest).
struct ObjectOnly<'de>(PhantomData<WireEvent<'de>>);

impl<'de> DeserializeSeed<'de> for ObjectOnly<'de> {
    type Value = WireEvent<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectOnly<'de> {
    type Value = WireEvent<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        WireEvent::deserialize(de::value::MapAccessDeserializer::new(map))
    }
}
