use super::*;

fn text(s: &str) -> String {
    scrub_text(s, &mut ScrubCounts::default())
}

fn ident(s: &str) -> String {
    scrub_identifier(s, &mut ScrubCounts::default())
}

fn url(s: &str) -> String {
    scrub_url(s, &QueryAllowList::default(), &mut ScrubCounts::default())
}

#[test]
fn emails_become_the_placeholder() {
    assert_eq!(
        text("Contact jane.doe+x@mail.example.co.uk now"),
        "Contact privacy@exatom.io now"
    );
}

#[test]
fn digits_become_hashes_and_dates_the_epoch() {
    assert_eq!(text("Call +31 6 1234 5678"), "Call +## # #### ####");
    assert_eq!(
        text("Born 12/03/1985, paid 2024-03-12"),
        "Born 01/01/1970, paid 01/01/1970"
    );
    assert_eq!(text("Card 4111 1111 1111 1111"), "Card #### #### #### ####");
    assert_eq!(text("Step 2 of 3"), "Step # of #");
}

#[test]
fn ip_addresses_become_the_placeholder() {
    assert_eq!(
        text("from 203.0.113.77 and 2001:db8::1"),
        "from [ip] and [ip]"
    );
    assert_eq!(text("opens 10:30"), "opens ##:##");
    assert_eq!(text("::1 local"), "[ip] local");
    assert_eq!(text("use std::vector"), "use std::vector");
    // Not an address: 999 is out of range, so it is digits.
    assert_eq!(text("v 999.1.1.1"), "v ###.#.#.#");
}

#[test]
fn identifiers_keep_short_digit_runs() {
    assert_eq!(ident("address_line_1"), "address_line_1");
    assert_eq!(ident("address_line_2"), "address_line_2");
    assert_eq!(ident("step_12_of_20"), "step_12_of_20");
    assert_eq!(ident("ref_4111111111111111"), "ref_################");
    assert_eq!(ident("jane@example.com"), "privacy@exatom.io");
    assert_eq!(ident("host-10.0.0.1"), "host-[ip]");
}

#[test]
fn identifiers_lose_numbers_written_with_separators() {
    assert_eq!(
        ident("card_4111 1111 1111 1111"),
        "card_#### #### #### ####"
    );
    assert_eq!(
        ident("card-4111-1111-1111-1111"),
        "card-####-####-####-####"
    );
    assert_eq!(ident("tel_06_1234_5678"), "tel_##_####_####");
    assert_eq!(ident("field-2024-03-12"), "field-####-##-##");
    assert_eq!(ident("born 12/03/1985"), "born ##/##/####");
    assert_eq!(ident("born_1.3.85"), "born_#.#.##");
    assert_eq!(ident("q1.2.3"), "q1.2.3");
    // An address after something that only looks like one is still found.
    assert_eq!(ident("a:b:1.2.3.4"), "a:b:[ip]");
}

#[test]
fn unicode_digits_and_addresses_are_masked_too() {
    assert_eq!(text("Tel ０６１２３４５６７８"), "Tel ##########");
    assert_eq!(text("٠٦١٢٣٤٥٦٧٨"), "##########");
    assert_eq!(ident("tel_０６１２３４５６７８"), "tel_##########");
    assert_eq!(
        text("Mail jösé.müller@exämple.de"),
        "Mail privacy@exatom.io"
    );
    assert_eq!(text("JANE.DOE@EXAMPLE.COM"), "privacy@exatom.io");
}

#[test]
fn ipv6_addresses_without_digits_are_masked_unless_inside_a_word() {
    assert_eq!(text("from dead:beef::cafe"), "from [ip]");
    assert_eq!(text("[fe80::1%eth0]:80"), "[[ip]%eth#]:##");
    assert_eq!(text("at 10:30:00, fe80::1."), "at ##:##:##, [ip].");
    assert_eq!(text("Foo::bar and std::vector"), "Foo::bar and std::vector");
    assert_eq!(text("mapped ::ffff:192.0.2.1"), "mapped [ip]");
}

#[test]
fn urls_lose_fragments_and_unlisted_parameters() {
    assert_eq!(
        url("https://shop.example/checkout?utm_source=news&email=jane@example.com&token=abc#step2"),
        "https://shop.example/checkout?utm_source=news"
    );
    assert_eq!(url("https://shop.example/a?x=1"), "https://shop.example/a");
    assert_eq!(
        url("https://shop.example/users/123456/orders"),
        // `#` would start a fragment: in a path it is written percent-encoded.
        "https://shop.example/users/%23%23%23%23%23%23/orders"
    );
    assert_eq!(
        url("https://shop.example/u/jane%40example.com"),
        "https://shop.example/u/privacy@exatom.io"
    );
    assert_eq!(url("http://192.168.1.20/admin"), "http://ip.invalid/admin");
    assert_eq!(
        url("https://user:pw@shop.example/"),
        "https://shop.example/"
    );
    // Digits in the host name are part of the site, not of a person.
    assert_eq!(
        url("https://www2.shop.example/"),
        "https://www2.shop.example/"
    );
}

#[test]
fn counts_follow_the_rules() {
    let mut c = ScrubCounts::default();
    scrub_url(
        "https://s.example/p/42?utm_x=a&q=b#f",
        &QueryAllowList::default(),
        &mut c,
    );
    scrub_text("a@b.example 1.2.3.4 01-02-2020", &mut c);
    assert_eq!(
        c,
        ScrubCounts {
            emails: 1,
            ips: 1,
            dates: 1,
            digit_runs: 1,
            query_params: 1,
            fragments: 1
        }
    );
}

#[test]
fn allow_list_takes_exact_names_and_prefixes() {
    let allow = QueryAllowList::parse("utm_*, gclid");
    let mut c = ScrubCounts::default();
    assert_eq!(
        scrub_url(
            "https://s.example/?gclid=x&gclidx=y&utm_a=b",
            &allow,
            &mut c
        ),
        "https://s.example/?gclid=x&utm_a=b"
    );
}

proptest::proptest! {
    /// No decimal digit of any script survives text scrubbing, except inside the date
    /// placeholder.
    #[test]
    fn text_keeps_no_digits(s in ".{0,200}") {
        let out = text(&s);
        let without_placeholder = out.replace(DATE_PLACEHOLDER, "");
        let digit = regex::Regex::new(r"\d").unwrap();
        proptest::prop_assert!(!digit.is_match(&without_placeholder), "{out}");
    }

    /// Identifiers never keep a run of six digits.
    #[test]
    fn identifiers_keep_no_long_runs(s in "[a-z0-9_ .@:-]{0,80}") {
        let out = ident(&s);
        let longest = out
            .split(|c: char| !c.is_numeric())
            .map(|run| run.chars().count())
            .max()
            .unwrap_or(0);
        proptest::prop_assert!(longest < IDENTIFIER_MAX_DIGITS, "{s} -> {out}");
    }
}
