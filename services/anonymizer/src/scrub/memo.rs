//! Scrubbing with a memory of the page text seen lately.
//!
//! Every event of a page carries the same page URL (and often title): a visitor filling a
//! ten-field form sends dozens of events, all with that URL, and the URL is the costliest
//! text to scrub (parsed, its query filtered, its path decoded and scanned). What scrubbing
//! made of each such text is kept in a bounded LRU, with the rule counts it produced, so a
//! repeat costs a lookup and a copy and counts in the metrics exactly as a fresh scrub would.
//! The keys are raw text: bounded, in memory only, never written anywhere (as the user
//! agent cache's keys).

use std::num::NonZeroUsize;

use lru::LruCache;

use super::{scrub_message, scrub_text, scrub_url, QueryAllowList, ScrubCounts};

/// What one text became, and which rules fired on the way.
struct Scrubbed {
    text: String,
    counts: ScrubCounts,
}

/// Scrubs URLs and page text, remembering the latest `entries` of each.
pub struct Scrubber {
    allow: QueryAllowList,
    urls: LruCache<String, Scrubbed>,
    texts: LruCache<String, Scrubbed>,
    pub hits: u64,
    pub misses: u64,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrubber").finish_non_exhaustive()
    }
}

impl Scrubber {
    pub fn new(allow: QueryAllowList, entries: usize) -> Self {
        let entries = NonZeroUsize::new(entries.max(1)).expect("non-zero");
        Scrubber {
            allow,
            urls: LruCache::new(entries),
            texts: LruCache::new(entries),
            hits: 0,
            misses: 0,
        }
    }

    /// [`scrub_url`], remembered.
    pub fn url(&mut self, url: String, counts: &mut ScrubCounts) -> String {
        let allow = &self.allow;
        remembered(
            &mut self.urls,
            (&mut self.hits, &mut self.misses),
            url,
            counts,
            |u, c| scrub_url(u, allow, c),
        )
    }

    /// [`scrub_text`] of text a page repeats on every event (its title), remembered.
    pub fn page_text(&mut self, text: String, counts: &mut ScrubCounts) -> String {
        remembered(
            &mut self.texts,
            (&mut self.hits, &mut self.misses),
            text,
            counts,
            |t, c| scrub_text(t, c).into_owned(),
        )
    }

    /// [`scrub_message`] with this scrubber's query allow-list; not remembered (errors are
    /// rare next to page text).
    pub fn message(&self, text: &str, counts: &mut ScrubCounts) -> String {
        scrub_message(text, &self.allow, counts)
    }

    /// Entries held (URLs and texts).
    pub fn len(&self) -> usize {
        self.urls.len() + self.texts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn remembered(
    memory: &mut LruCache<String, Scrubbed>,
    (hits, misses): (&mut u64, &mut u64),
    raw: String,
    counts: &mut ScrubCounts,
    scrub: impl FnOnce(&str, &mut ScrubCounts) -> String,
) -> String {
    if let Some(seen) = memory.get(&raw) {
        *hits += 1;
        counts.add(seen.counts);
        return seen.text.clone();
    }
    *misses += 1;
    let mut fresh = ScrubCounts::default();
    let text = scrub(&raw, &mut fresh);
    counts.add(fresh);
    memory.put(
        raw,
        Scrubbed {
            text: text.clone(),
            counts: fresh,
        },
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://shop.example/order/4711?utm_source=x&mail=jane@example.com#top";
    const TITLE: &str = "Order 123456 for jane@example.com";

    #[test]
    fn a_repeat_gives_what_a_fresh_scrub_gives_and_counts_the_same() {
        let allow = QueryAllowList::default();
        let mut fresh = ScrubCounts::default();
        let want_url = scrub_url(URL, &allow, &mut fresh);
        let want_title = scrub_text(TITLE, &mut fresh).into_owned();
        assert!(fresh.digit_runs > 0 && fresh.emails > 0 && fresh.query_params > 0);

        let mut scrubber = Scrubber::new(allow, 10);
        for round in 1..=3u64 {
            let mut counts = ScrubCounts::default();
            assert_eq!(scrubber.url(URL.to_owned(), &mut counts), want_url);
            assert_eq!(
                scrubber.page_text(TITLE.to_owned(), &mut counts),
                want_title
            );
            assert_eq!(counts, fresh, "round {round}");
            assert_eq!((scrubber.misses, scrubber.hits), (2, 2 * (round - 1)));
        }
    }

    #[test]
    fn urls_and_texts_are_remembered_apart() {
        // The same characters scrubbed as a URL and as text give different results.
        let mut scrubber = Scrubber::new(QueryAllowList::default(), 10);
        let mut counts = ScrubCounts::default();
        let as_url = scrubber.url(URL.to_owned(), &mut counts);
        let as_text = scrubber.page_text(URL.to_owned(), &mut counts);
        assert_ne!(as_url, as_text);
        assert_eq!(scrubber.misses, 2);
    }

    #[test]
    fn memory_is_bounded() {
        let mut scrubber = Scrubber::new(QueryAllowList::default(), 3);
        let mut counts = ScrubCounts::default();
        for i in 0..100 {
            scrubber.url(format!("https://x.example/p{i}"), &mut counts);
            scrubber.page_text(format!("Page {i}"), &mut counts);
        }
        assert_eq!(scrubber.len(), 6);
        // The oldest are gone: scrubbing them again is a miss.
        scrubber.url("https://x.example/p0".to_owned(), &mut counts);
        assert_eq!((scrubber.hits, scrubber.misses), (0, 201));
    }
}
