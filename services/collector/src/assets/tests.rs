use std::io::Read;

use super::*;

fn request(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(k, HeaderValue::from_str(v).unwrap());
    }
    h
}

async fn body_of(response: Response) -> Vec<u8> {
    axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec()
}

#[test]
fn gzip_is_accepted_as_browsers_and_rfc_9110_say() {
    assert!(accepts_gzip("gzip, deflate, br, zstd"));
    assert!(accepts_gzip("GZIP;q=0.5"));
    assert!(accepts_gzip("br;q=1, *;q=0.1"));
    assert!(!accepts_gzip("br"));
    assert!(!accepts_gzip("gzip;q=0"));
    assert!(!accepts_gzip("identity"));
    assert!(!accepts_gzip(""));
}

#[test]
fn if_none_match_uses_weak_comparison() {
    assert!(etag_matches("\"abc\"", "\"abc\""));
    assert!(etag_matches("W/\"abc\"", "\"abc\""));
    assert!(etag_matches("\"x\", \"abc\"", "\"abc\""));
    assert!(etag_matches("*", "\"abc\""));
    assert!(!etag_matches("\"abc-gz\"", "\"abc\""));
    assert!(!etag_matches("", "\"abc\""));
}

#[tokio::test]
async fn a_tag_is_served_gzipped_when_accepted_with_etag_and_cache_control() {
    let asset = Asset::new("application/javascript", TAG_CACHE, TAG_JS.into());
    let gz = asset.respond(&request(&[(header::ACCEPT_ENCODING, "gzip, br")]));
    assert_eq!(gz.status(), StatusCode::OK);
    assert_eq!(gz.headers()[header::CONTENT_ENCODING], "gzip");
    assert_eq!(gz.headers()[header::CACHE_CONTROL], TAG_CACHE);
    assert_eq!(gz.headers()[header::VARY], "Accept-Encoding");
    let gz_etag = gz.headers()[header::ETAG].to_str().unwrap().to_owned();
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&body_of(gz).await[..])
        .read_to_string(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, TAG_JS);

    let plain = asset.respond(&HeaderMap::new());
    assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
    let etag = plain.headers()[header::ETAG].to_str().unwrap().to_owned();
    assert_ne!(etag, gz_etag, "each representation has its own strong ETag");
    assert!(etag.starts_with('"') && etag.ends_with('"'));
    assert_eq!(body_of(plain).await, TAG_JS.as_bytes());
}

#[tokio::test]
async fn a_current_copy_gets_304_without_a_body() {
    let asset = Asset::new("application/javascript", TAG_CACHE, CONVERSION_JS.into());
    let etag = asset.respond(&HeaderMap::new()).headers()[header::ETAG]
        .to_str()
        .unwrap()
        .to_owned();
    let again = asset.respond(&request(&[(header::IF_NONE_MATCH, &etag)]));
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()[header::ETAG], etag.as_str());
    assert!(body_of(again).await.is_empty());
    // The gzip representation's ETag does not validate the plain one.
    let gz_etag = format!("{}-gz\"", etag.trim_end_matches('"'));
    let other = asset.respond(&request(&[(header::IF_NONE_MATCH, &gz_etag)]));
    assert_eq!(other.status(), StatusCode::OK);
}

#[test]
fn both_tags_together_stay_under_6_kib_gzipped() {
    let js = "application/javascript";
    let total = Asset::new(js, TAG_CACHE, TAG_JS.into()).gzipped_len()
        + Asset::new(js, TAG_CACHE, CONVERSION_JS.into()).gzipped_len();
    assert!(total < 6 * 1024, "tags are {total} bytes gzipped");
}

/// `tags/build.sh` writes the SHA-256 of a tag's sources on its first line: a source
/// edited without rebuilding would be served stale.
#[test]
fn served_tags_are_built_from_the_current_sources() {
    let privacy = include_str!("../../../../tags/src/privacy.js");
    let core = include_str!("../../../../tags/src/core.js");
    for (served, sources) in [
        (
            TAG_JS,
            vec![privacy, core, include_str!("../../../../tags/src/tag.js")],
        ),
        (
            CONVERSION_JS,
            vec![
                privacy,
                core,
                include_str!("../../../../tags/src/conversion.js"),
            ],
        ),
        (
            crate::replay::REPLAY_JS,
            vec![privacy, include_str!("../../../../tags/src/replay.js")],
        ),
    ] {
        let mut hash = Sha256::new();
        for source in sources {
            hash.update(source);
        }
        let expected = format!("sources sha256:{}", hex::encode(hash.finalize()));
        let first_line = served.lines().next().unwrap_or_default();
        assert!(
            first_line.contains(&expected),
            "tags/dist is stale: run tags/build.sh ({first_line})"
        );
    }
}

#[test]
fn demo_pages_carry_the_configured_site_and_its_conversion_tag() {
    let pages = demo_pages("SHOP_7");
    assert_eq!(pages.len(), DEMO.len());
    for (name, asset) in &pages {
        let text = std::str::from_utf8(&asset.plain).unwrap();
        assert!(!text.contains("{{"), "{name} has an unfilled placeholder");
        if name.ends_with(".html") {
            assert!(
                text.contains(r#"src="/tag.js" data-site="SHOP_7""#),
                "{name} carries the event tag"
            );
        }
    }
    let thanks = std::str::from_utf8(&pages["thanks.html"].plain).unwrap();
    assert!(thanks.contains(r#"src="/conversion.js" data-site="SHOP_7" data-tag="SHOP_71""#));
}

#[test]
fn the_demo_site_setting_takes_a_site_code_or_nothing() {
    #[derive(Debug, Deserialize)]
    struct Config {
        #[serde(default, deserialize_with = "demo_site")]
        demo_site: String,
    }
    let load = |value: &str| {
        exatom_core::config::load_from::<Config>(
            [("EXATOM_DEMO_SITE".to_owned(), value.to_owned())],
            &["demo_site"],
        )
    };
    assert_eq!(load("DEMO").unwrap().demo_site, "DEMO");
    assert_eq!(load("1234").unwrap().demo_site, "1234");
    assert_eq!(load("").unwrap().demo_site, "");
    let refused = load("<script>").unwrap_err().to_string();
    assert!(refused.contains("EXATOM_DEMO_SITE"), "{refused}");
}
