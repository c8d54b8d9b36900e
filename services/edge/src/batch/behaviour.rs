//! The checks of the behaviour events: `click`, `scroll` and `js_error`. Positions are
//! numbers with bounds; the free text they carry (an element path, an error message) is
//! bounded here and scrubbed by the anonymizer like any text.

use exatom_core::model::{Click, ErrorFrame, ScriptError};

use super::checks::{bounded_str, url_path};
use super::wire::{WireEvent, WireFrame};
use super::Invalid;
use crate::limits::Limits;

/// Stack frames kept of one error: the top ones say where it broke.
pub const MAX_ERROR_FRAMES: usize = 10;
/// Page y of a click, in CSS pixels: far below any page a visitor scrolls through.
pub const MAX_CLICK_Y: i64 = 1_000_000;
/// Viewport width, in CSS pixels.
pub const MAX_VIEWPORT_WIDTH: i64 = 100_000;
/// Line and column of a script position.
pub const MAX_SCRIPT_POSITION: i64 = 10_000_000;

pub(super) fn click_of(wire: &mut WireEvent<'_>, limits: &Limits) -> Result<Click, Invalid> {
    let x = wire.x.filter(|x| (0.0..=1.0).contains(x)).ok_or((
        "invalid_click",
        "`x` must be a number from 0 to 1".to_owned(),
    ))?;
    let y = within("y", wire.y, MAX_CLICK_Y, "invalid_click")?;
    let viewport_width = within(
        "viewport_width",
        wire.viewport_width,
        MAX_VIEWPORT_WIDTH,
        "invalid_click",
    )?;
    Ok(Click {
        x,
        y,
        viewport_width,
        path: bounded_str(
            "path",
            wire.path.take().unwrap_or_default(),
            limits.max_string_chars,
        )?,
        interactive: wire.interactive.unwrap_or(false),
        rage: wire.rage.unwrap_or(false),
        // A click on a link or button that changes nothing is slow, not dead.
        dead: wire.dead.unwrap_or(false) && !wire.interactive.unwrap_or(false),
    })
}

pub(super) fn scroll_depth_of(wire: &WireEvent<'_>) -> Result<i32, Invalid> {
    within("depth", wire.depth, 100, "invalid_depth")
}

pub(super) fn error_of(wire: &mut WireEvent<'_>, limits: &Limits) -> Result<ScriptError, Invalid> {
    let max = limits.max_string_chars;
    let message = bounded_str("message", wire.message.take().unwrap_or_default(), max)?;
    if message.is_empty() {
        return Err((
            "missing_message",
            "`message` is required for js_error".to_owned(),
        ));
    }
    let frames = wire.frames.take().unwrap_or_default();
    if frames.len() > MAX_ERROR_FRAMES {
        return Err((
            "too_many_frames",
            format!("`frames` holds more than {MAX_ERROR_FRAMES}"),
        ));
    }
    Ok(ScriptError {
        message,
        source: script_url("source", wire.source.take(), limits)?,
        line: position("line", wire.line)?,
        column: position("column", wire.column)?,
        frames: frames
            .into_iter()
            .map(|f: WireFrame| {
                Ok(ErrorFrame {
                    file: script_url("frames.file", Some(f.file), limits)?,
                    line: position("frames.line", Some(f.line))?,
                    column: position("frames.column", Some(f.column))?,
                })
            })
            .collect::<Result<_, Invalid>>()?,
    })
}

/// A script's URL as the tag reports it: empty, or an absolute http(s) URL, kept without
/// query and fragment whatever was sent (a token in a script's query is a secret).
fn script_url(name: &str, value: Option<String>, limits: &Limits) -> Result<String, Invalid> {
    match value {
        None => Ok(String::new()),
        Some(v) if v.is_empty() => Ok(v),
        Some(v) => url_path(name, v, limits),
    }
}

/// A line or column: 0 when the browser does not say.
fn position(name: &str, value: Option<i64>) -> Result<i32, Invalid> {
    within(
        name,
        Some(value.unwrap_or(0)),
        MAX_SCRIPT_POSITION,
        "invalid_position",
    )
}

fn within(name: &str, value: Option<i64>, max: i64, code: &'static str) -> Result<i32, Invalid> {
    value
        .filter(|v| (0..=max).contains(v))
        .map(|v| v as i32)
        .ok_or_else(|| {
            (
                code,
                format!("`{name}` must be a whole number from 0 to {max}"),
            )
        })
}

#[cfg(test)]
mod tests;
