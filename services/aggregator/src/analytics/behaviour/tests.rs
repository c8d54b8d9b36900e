use super::*;
use exatom_core::model::{Click, ScriptError};

fn event(kind: EventKind, t: i64, page: &str) -> SessionEvent {
    SessionEvent {
        event_id: format!("e{t}"),
        kind,
        event_time_ms: t,
        page: Some(page.to_owned()),
        ..SessionEvent::default()
    }
}

fn click(t: i64, page: &str, x: f64, y: i32, rage: bool, dead: bool) -> SessionEvent {
    SessionEvent {
        click: Some(Click {
            x,
            y,
            viewport_width: 1280,
            path: "main>div.btn".into(),
            interactive: !dead,
            rage,
            dead,
        }),
        ..event(EventKind::Click, t, page)
    }
}

fn scroll(t: i64, page: &str, depth: i32) -> SessionEvent {
    SessionEvent {
        scroll_depth: Some(depth),
        ..event(EventKind::Scroll, t, page)
    }
}

fn error(t: i64, page: &str, message: &str) -> SessionEvent {
    SessionEvent {
        error: Some(ScriptError {
            message: message.into(),
            source: "https://shop.test/app.js".into(),
            line: 1,
            column: 2,
            frames: vec![],
        }),
        ..event(EventKind::JsError, t, page)
    }
}

const A: &str = "https://shop.test/a";

#[test]
fn bins_are_two_percent_columns_by_25_pixel_rows_and_edges_stay_inside() {
    assert_eq!(bin(0.0, 0), (0, 0));
    assert_eq!(bin(0.019, 24), (0, 0));
    assert_eq!(bin(0.02, 25), (1, 1));
    assert_eq!(bin(0.5, 1000), (25, 40));
    assert_eq!(bin(1.0, 49), (49, 1), "the right edge is the last column");
    assert_eq!(bin(f64::NAN, -5), (0, 0));
    assert_eq!(bin(7.0, i32::MAX), (49, (i32::MAX / 25) as u32));
}

#[test]
fn clicks_add_up_per_page_without_query_and_bin() {
    let events = [
        click(
            1,
            "https://shop.test/a?utm_source=x#top",
            0.5,
            100,
            false,
            true,
        ),
        click(2, A, 0.505, 110, false, true),
        click(3, A, 0.51, 120, true, true),
        click(4, A, 0.9, 100, false, false),
        click(5, "https://shop.test/b", 0.5, 100, false, false),
        // A click without its click record (a newer writer's) is not a position.
        event(EventKind::Click, 6, A),
    ];
    let bins = click_bins(&events);
    let got: Vec<(&str, u8, u32, u32, u32, u32)> = bins
        .iter()
        .map(|b| {
            (
                b.page.as_str(),
                b.x_bin,
                b.y_bin,
                b.clicks,
                b.rage_clicks,
                b.dead_clicks,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (A, 25, 4, 3, 1, 3),
            (A, 45, 4, 1, 0, 0),
            ("https://shop.test/b", 25, 4, 1, 0, 0),
        ]
    );
}

#[test]
fn each_page_view_keeps_its_deepest_point() {
    let events = [
        event(EventKind::PageView, 1, A),
        scroll(2, A, 25),
        scroll(3, A, 80),
        scroll(4, A, 60),
        event(EventKind::PageView, 5, "https://shop.test/b"),
        // The same page again is a second view of it, starting at the top.
        event(EventKind::PageView, 6, A),
        scroll(7, "https://shop.test/a?utm_campaign=y", 30),
        // A depth of a page whose view was not in this session is a view of its own.
        scroll(8, "https://shop.test/c", 100),
    ];
    let views = page_scrolls(&events);
    let views: Vec<(&str, u32, u8)> = views
        .iter()
        .map(|v| (v.page.as_str(), v.view, v.depth))
        .collect();
    assert_eq!(
        views,
        [
            (A, 0, 80),
            ("https://shop.test/b", 1, 0),
            (A, 2, 30),
            ("https://shop.test/c", 3, 100)
        ]
    );
}

#[test]
fn errors_are_counted_per_page_message_and_source_from_their_first_time() {
    let events = [
        error(10, A, "Widget failed"),
        error(20, "https://shop.test/a#x", "Widget failed"),
        error(30, A, "Other"),
        event(EventKind::PageView, 40, A),
    ];
    let errors = session_errors(&events);
    let errors: Vec<(&str, &str, u32, i64)> = errors
        .iter()
        .map(|e| {
            (
                e.page.as_str(),
                e.message.as_str(),
                e.errors,
                e.first_error_ms,
            )
        })
        .collect();
    assert_eq!(errors, [(A, "Other", 1, 30), (A, "Widget failed", 2, 10)]);
}
