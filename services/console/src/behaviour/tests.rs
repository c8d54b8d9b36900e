use serde_json::{json, Value};

use super::figures::{bins_for, devices_of, with_forms, QUERIES};
use super::render::*;
use super::*;
use crate::http::content_security_policy;
use crate::service::Sql;

fn bin(x_bin: u64, y_bin: u64, clicks: u64, rage_clicks: u64, dead_clicks: u64) -> Bin {
    Bin {
        x_bin,
        y_bin,
        clicks,
        rage_clicks,
        dead_clicks,
    }
}

#[test]
fn only_http_and_https_pages_are_framed_and_their_origin_is_the_frame_source() {
    let page = framed_page("https://shop.example/cart/step-2").unwrap();
    assert_eq!(page.src, "https://shop.example/cart/step-2");
    assert_eq!(page.source.origin(), "https://shop.example");
    let local = framed_page("http://localhost:8080/demo/index.html").unwrap();
    assert_eq!(local.source.origin(), "http://localhost:8080");
    assert_eq!(
        framed_page("https://shop.example:443/")
            .unwrap()
            .source
            .origin(),
        "https://shop.example",
        "the default port is the origin's"
    );
    assert_eq!(
        framed_page("https://bücher.example/a")
            .unwrap()
            .source
            .origin(),
        "https://xn--bcher-kva.example"
    );
    for refused in [
        "javascript:alert(1)",
        "data:text/html,<b>x</b>",
        "file:///etc/passwd",
        "ftp://files.example/a",
        "/cart",
        "shop.example/cart",
        "https://user:secret@shop.example/",
        "about:blank",
        "",
    ] {
        assert_eq!(framed_page(refused), None, "{refused}");
    }
}

#[test]
fn the_policy_frames_the_pages_origin_for_that_answer_alone() {
    let page = framed_page("https://shop.example/cart").unwrap();
    let policy = content_security_policy(Some(&page.source), false);
    assert!(
        policy.contains("; frame-src https://shop.example; frame-ancestors 'none';"),
        "{policy}"
    );
    assert!(!policy.contains('*'), "{policy}");
    assert!(policy.starts_with("default-src 'self'; script-src 'self'"));
    let plain = content_security_policy(None, false);
    assert!(!plain.contains("frame-src"), "{plain}");
    assert!(plain.contains("frame-ancestors 'none'"));
}

#[test]
fn each_bin_is_two_percent_wide_and_twenty_five_pixels_high_at_its_place() {
    let svg = overlay(&[bin(0, 0, 4, 0, 0), bin(49, 3, 2, 1, 1)], 1280, 300);
    assert!(
        svg.starts_with(
            "<svg class=\"clicks\" width=\"1280\" height=\"300\" pointer-events=\"none\""
        ),
        "{svg}"
    );
    assert!(
        svg.contains("<rect class=\"bin\" x=\"0%\" y=\"0\" width=\"2%\" height=\"25\" fill=\"#dd6b20\" opacity=\"0.850\"/>"),
        "{svg}"
    );
    assert!(
        svg.contains("<rect class=\"bin\" x=\"98%\" y=\"75\" width=\"2%\" height=\"25\" fill=\"#dd6b20\" opacity=\"0.475\"/>"),
        "{svg}"
    );
    // Rage: a red outline on its bin; dead: a dashed cross corner to corner.
    assert!(
        svg.contains("<rect class=\"rage\" x=\"98%\" y=\"75\" width=\"2%\" height=\"25\" fill=\"none\" stroke=\"#c53030\""),
        "{svg}"
    );
    assert!(
        svg.contains("stroke-dasharray=\"3 2\"><line x1=\"98%\" y1=\"75\" x2=\"100%\" y2=\"100\"/><line x1=\"100%\" y1=\"75\" x2=\"98%\" y2=\"100\"/>"),
        "{svg}"
    );
    assert_eq!(svg.matches("class=\"rage\"").count(), 1);
    assert_eq!(svg.matches("class=\"dead\"").count(), 1);
    // Markers over fills: every fill comes before the first marker.
    assert!(svg.rfind("class=\"bin\"").unwrap() < svg.find("class=\"rage\"").unwrap());
    // Nothing past the frame or outside the 50 columns is drawn.
    let clipped = overlay(&[bin(3, 12, 1, 0, 0), bin(50, 0, 1, 0, 0)], 390, 300);
    assert!(!clipped.contains("<rect"), "{clipped}");
}

#[test]
fn opacity_follows_clicks_against_the_busiest_bin() {
    let near = |a: f64, b: f64| (a - b).abs() < 1e-9;
    assert!(near(opacity(8, 8), 0.85));
    assert!(near(opacity(4, 8), 0.475));
    assert!(near(opacity(1, 100), 0.1075), "the faintest is still seen");
    assert_eq!(opacity(0, 8), 0.0);
    assert_eq!(opacity(3, 0), 0.0);
    assert!(near(opacity(9, 8), 0.85), "never above the strongest");
}

#[test]
fn the_frame_reaches_below_the_lowest_click_and_stops_at_a_bound() {
    assert_eq!(
        frame_height(&[bin(0, 39, 1, 0, 0), bin(5, 2, 1, 0, 0)]),
        40 * 25 + 200
    );
    assert_eq!(frame_height(&[bin(0, 0, 1, 0, 0)]), 225);
    assert_eq!(
        frame_height(&[bin(0, u64::MAX, 1, 0, 0)]),
        MAX_FRAME_HEIGHT_PX
    );
    assert_eq!(
        frame_height(&[bin(0, 10_000_000, 1, 0, 0)]),
        MAX_FRAME_HEIGHT_PX
    );
}

#[test]
fn each_device_class_has_its_width() {
    assert_eq!(layout("desktop"), ("heatmap-desktop", 1280));
    assert_eq!(layout("tablet"), ("heatmap-tablet", 768));
    assert_eq!(layout("mobile"), ("heatmap-mobile", 390));
    assert_eq!(layout("bot").1, 1280);
}

#[test]
fn a_heatmap_frames_its_page_sandboxed_at_its_width_with_the_clicks_over_it() {
    let bins = [bin(10, 7, 3, 0, 0)];
    let html = render::heatmap("https://shop.example/cart", "mobile", &bins);
    assert!(
        html.contains("<div class=\"heatmap framed heatmap-mobile\"><iframe src=\"https://shop.example/cart\" width=\"390\" height=\"400\" scrolling=\"no\" sandbox=\"\""),
        "{html}"
    );
    assert!(!html.contains("allow-"), "no sandbox exception: {html}");
    assert!(html.contains("</iframe><svg class=\"clicks\" width=\"390\" height=\"400\""));
    assert!(html.starts_with("<div class=\"heatmap-scroll\">"));
    // Markup in a page key stays text, and such a key is never framed.
    let odd = render::heatmap("javascript:alert(\"x\")//<b>", "desktop", &bins);
    assert!(!odd.contains("<iframe"), "{odd}");
    assert!(
        odd.contains("<svg class=\"clicks\" width=\"1280\""),
        "{odd}"
    );
    let quoted = render::heatmap(
        "https://shop.example/a\"><script>x</script>",
        "desktop",
        &bins,
    );
    assert!(!quoted.contains("<script>"), "{quoted}");
    assert!(
        quoted.contains("src=\"https://shop.example/a%22%3E%3Cscript%3Ex%3C/script%3E\""),
        "{quoted}"
    );
}

#[test]
fn scroll_bars_are_as_long_as_their_share_of_views() {
    let svg = depth_bars([1.0, 0.5, 0.25, 0.0]);
    let widths: Vec<&str> = svg
        .split("class=\"bar\"")
        .skip(1)
        .map(|s| {
            s.split("width=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(widths, ["260.0", "130.0", "65.0", "0.0"]);
    for label in ["100.0 %", "50.0 %", "25.0 %", "0.0 %", ">75 %<"] {
        assert!(svg.contains(label), "{label}: {svg}");
    }
    assert!(svg.contains("aria-label=\"25 %: 100.0 %, 50 %: 50.0 %, 75 %: 25.0 %, 100 %: 0.0 %\""));
    let odd = depth_bars([1.7, -0.2, f64::NAN, 0.999]);
    assert!(
        odd.contains("width=\"260.0\" height=\"14\" fill=\"#2b6cb0\""),
        "{odd}"
    );
    assert!(!odd.contains("NaN") && !odd.contains("\"-"), "{odd}");
}

#[test]
fn scroll_figures_show_each_page_and_escape_it() {
    let scroll = Table::from_json_lines(
        "{\"page\":\"https://a.example/<b>\",\"device_class\":\"mobile\",\"views\":8,\"reached_25_rate\":0.75,\"reached_50_rate\":0.5,\"reached_75_rate\":0.25,\"reached_100_rate\":0.125}",
    )
    .unwrap();
    let html = depth_figures(&scroll);
    assert!(
        html.contains("https://a.example/&lt;b&gt;</span> · mobile · 8 views"),
        "{html}"
    );
    assert!(html.contains("width=\"195.0\""), "{html}");
    assert!(depth_figures(&Table::empty(&["page"])).contains("No page views"));
}

#[test]
fn a_heatmap_read_splits_into_device_classes_and_the_bins_of_one() {
    let all = Table::from_json_lines(
        "{\"device_class\":\"desktop\",\"x_bin\":1,\"y_bin\":0,\"clicks\":2,\"rage_clicks\":0,\"dead_clicks\":0}\n\
         {\"device_class\":\"mobile\",\"x_bin\":4,\"y_bin\":2,\"clicks\":3,\"rage_clicks\":1,\"dead_clicks\":0}\n\
         {\"device_class\":\"mobile\",\"x_bin\":5,\"y_bin\":9,\"clicks\":1,\"rage_clicks\":0,\"dead_clicks\":1}\n\
         {\"device_class\":\"tablet\",\"x_bin\":0,\"y_bin\":0,\"clicks\":2,\"rage_clicks\":0,\"dead_clicks\":0}",
    )
    .unwrap();
    let devices = devices_of(&all);
    assert_eq!(devices.columns, ["device_class", "clicks"]);
    assert_eq!(
        serde_json::to_value(&devices.rows).unwrap(),
        json!([["mobile", 4], ["desktop", 2], ["tablet", 2]])
    );
    let mobile = bins_for(&all, "mobile");
    assert_eq!(mobile.columns, figures::BIN_COLUMNS);
    assert_eq!(
        serde_json::to_value(&mobile.rows).unwrap(),
        json!([[4, 2, 3, 1, 0], [5, 9, 1, 0, 1]])
    );
    assert_eq!(
        render::bins(&mobile),
        [bin(4, 2, 3, 1, 0), bin(5, 9, 1, 0, 1)]
    );
    assert!(bins_for(&all, "bot").rows.is_empty());
    assert!(devices_of(&Table::default()).rows.is_empty());
}

#[test]
fn each_error_lists_the_forms_its_sessions_abandoned() {
    let mut errors = Table::from_json_lines(
        "{\"page\":\"https://a.example/\",\"message\":\"x is undefined\",\"source\":\"app.js\",\"errors\":9,\"sessions\":4,\"sessions_abandoning_a_form\":3,\"sessions_converting\":0}\n\
         {\"page\":\"https://a.example/\",\"message\":\"y\",\"source\":\"app.js\",\"errors\":1,\"sessions\":1,\"sessions_abandoning_a_form\":0,\"sessions_converting\":1}",
    )
    .unwrap();
    let forms = Table::from_json_lines(
        "{\"page\":\"https://a.example/\",\"message\":\"x is undefined\",\"source\":\"app.js\",\"form\":\"signup\",\"sessions\":2}\n\
         {\"page\":\"https://a.example/\",\"message\":\"x is undefined\",\"source\":\"app.js\",\"form\":\"news letter\",\"sessions\":1}",
    )
    .unwrap();
    with_forms(&mut errors, &forms);
    assert_eq!(errors.columns.last().unwrap(), "forms_abandoned");
    assert_eq!(
        errors.rows[0][7],
        json!([{"form": "signup", "sessions": 2}, {"form": "news letter", "sessions": 1}])
    );
    assert_eq!(errors.rows[1][7], json!([]));
    let links = forms_links("DEMO", &errors.rows[0][7], "from=2026-01-01&to=2026-01-31");
    assert_eq!(
        links,
        "<span class=\"forms\"><a href=\"/sites/DEMO/forms/signup?from=2026-01-01&amp;to=2026-01-31\">signup</a> (2)<br>\
         <a href=\"/sites/DEMO/forms/news%20letter?from=2026-01-01&amp;to=2026-01-31\">news letter</a> (1)</span>"
    );
    assert_eq!(forms_links("DEMO", &errors.rows[1][7], ""), "");
    // The page shows the links in place of the JSON, and markup in a message as text.
    errors.rows[1][1] = Value::from("<img src=x onerror=alert(1)>");
    let body = errors_body(
        "DEMO",
        &errors,
        "from=2026-01-01&to=2026-01-31",
        "/api/sites/DEMO",
    );
    assert!(body.contains("<th>forms abandoned</th>"), "{body}");
    assert!(
        !body.contains("forms abandoned</th><th>forms abandoned"),
        "{body}"
    );
    assert!(!body.contains("\"sessions\":"), "{body}");
    assert!(body.contains("href=\"/sites/DEMO/forms/signup?from=2026-01-01&amp;to=2026-01-31\""));
    assert!(
        !body.contains("<img") && body.contains("&lt;img src=x"),
        "{body}"
    );
}

#[test]
fn every_query_binds_only_what_the_pages_set() {
    for source in QUERIES {
        let sql = Sql::prepare(source);
        assert_eq!(&sql.params[..1], ["site"], "{source}");
        for p in &sql.params {
            assert!(
                ["site", "from", "to", "page"].contains(&p.as_str()),
                "{p} in {source}"
            );
        }
        assert!(sql.params.contains(&"from".to_owned()) && sql.params.contains(&"to".to_owned()));
    }
}

#[test]
fn heatmap_parameters_are_checked_and_blank_ones_are_defaults() {
    let p = Params {
        page: Some("https://a.example/".into()),
        device: Some(String::new()),
        ..Params::default()
    };
    assert_eq!(
        asked(&p, Audience::Api).unwrap(),
        (Some("https://a.example/"), None)
    );
    let bad = Params {
        device: Some("Desktop'--".into()),
        ..Params::default()
    };
    assert!(asked(&bad, Audience::Api).is_err());
    // Each page is in the navigation, after Tooltips.
    let nav: Vec<&str> = crate::pages::PAGES.iter().map(|(p, _)| *p).collect();
    let after = nav.iter().position(|p| *p == "tooltips").unwrap() + 1;
    assert_eq!(nav[after..after + 3], PAGES);
}
