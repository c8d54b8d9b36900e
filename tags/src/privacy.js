// The privacy rules every tag applies in the browser, before anything is sent (the event
// tag, the conversion tag and the replay recorder share this file): which regions are
// blocked or masked, and how texts and URLs lose what could identify someone.

// Elements (and their children) that are not tracked at all, and those whose texts are masked.
const BLOCK = '.ex-block,.rr-block,.fs-exclude,.fs-block,.data-hj-suppress,[data-hj-suppress]';
const MASK = '.ex-mask,.fs-mask,.rr-mask';
// Structured data (schema.org microdata: names, addresses, prices, a person's details):
// an element with `itemprop` and everything inside it give no text at all.
const ITEMPROP = '[itemprop]';

/** A URL without fragment, credentials or query parameters other than `utm_*`: a query
 * can carry what a visitor typed (a GET form), so it never leaves the browser. */
const clean = (href) => {
  if (!href) return '';
  try {
    const u = new URL(href, location.href);
    const keep = new URLSearchParams();
    u.searchParams.forEach((v, k) => /^utm_/i.test(k) && keep.append(k, v));
    u.search = keep;
    u.hash = u.username = u.password = '';
    return u.href;
  } catch (e) {
    return '';
  }
};

// E-mail addresses, numeric dates, then any other digit.
const PII = /[\w.%+-]+@[\w-]+(\.[\w-]+)+|\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}|\d/g;

/** Text with e-mails, dates and digits replaced, as it was otherwise (replay's texts). */
const mask = (s) =>
  (s || '').replace(PII, (m) => (m.indexOf('@') > 0 ? 'privacy@exatom.io' : m.length > 1 ? '01/01/1970' : '#'));

/** Visible text made safe to send as a label: masked, whitespace folded, 200 characters. */
const scrub = (s) => mask(s).replace(/\s+/g, ' ').trim().slice(0, 200);
