// Shared by both tags: configuration from the script tag, event ids and the sender.
// build.sh wraps privacy.js, this and one tag's code in a single function, so nothing but
// `window.exatom` is visible to the page.

const W = window;
const D = document;
// Read now: `currentScript` is only set while this file runs for the first time.
const me = D.currentScript || D.querySelector('script[data-site]');

/** The tag's own configuration: `data-<name>` on its script tag (never the page's). */
const attr = (name) => (me && me.getAttribute('data-' + name)) || '';

const site = attr('site');
const collector = (attr('collector') || new URL((me && me.src) || location.href, location.href).origin).replace(/\/+$/, '');
const endpoint = collector + '/v1/events';

/** Wraps a callback so that an error inside the tag never reaches the page. */
const safe = (fn) =>
  function () {
    try {
      return fn.apply(this, arguments);
    } catch (e) {
      return undefined;
    }
  };

/** A random UUID v4: the event's idempotency key downstream. */
const uuid = () => {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 15) | 64;
  b[8] = (b[8] & 63) | 128;
  let s = '';
  b.forEach((x, i) => {
    s += (x + 256).toString(16).slice(1) + (i == 3 || i == 5 || i == 7 || i == 9 ? '-' : '');
  });
  return s;
};

// Strictly increasing on a page: a field's blur and the next field's focus often share a
// millisecond, and the pipeline orders a session's events by time.
let last = 0;
const iso = () => new Date((last = Math.max(Date.now(), last + 1))).toISOString();

const MAX_BATCH = 50;
const MAX_QUEUE = 500;
const MAX_ATTEMPTS = 10;
let queue = [];
let busy = 0;
let timer = 0;
let attempt = 0;

/** Queues one event; batches leave at most a second later. An event sent late (a click
 * waits a second) brings the time it happened. */
const send = (event) => {
  event.id = uuid();
  event.ts = event.ts || iso();
  if (queue.length < MAX_QUEUE) queue.push(event);
  later(queue.length >= MAX_BATCH ? 0 : 1000);
};

const later = (ms) => {
  if (!timer) timer = setTimeout(safe(flush), ms);
};

// `sent_at` is set on every attempt: the collector corrects clock skew with it.
const body = (events) => JSON.stringify({ site, sent_at: iso(), events });

const post = (text) =>
  fetch(endpoint, {
    method: 'POST',
    body: text,
    keepalive: text.length < 60000,
    credentials: 'omit',
    // A CORS-safelisted type: no preflight, and the same body a beacon sends.
    headers: { 'Content-Type': 'text/plain;charset=UTF-8' },
  });

/** Sends the oldest events; on 429, 5xx or a network error puts them back and retries
 * with exponential backoff (honouring Retry-After), at most MAX_ATTEMPTS times. */
const flush = () => {
  timer = 0;
  if (busy || !queue.length) return;
  const batch = queue.splice(0, MAX_BATCH);
  busy = 1;
  const done = safe((status, retryAfter) => {
    busy = 0;
    if ((!status || status == 408 || status == 429 || status >= 500) && ++attempt <= MAX_ATTEMPTS) {
      queue = batch.concat(queue).slice(0, MAX_QUEUE);
      const wait = Math.max(Math.min(30000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2), 1000 * Math.min(+retryAfter || 0, 60));
      clearTimeout(timer);
      timer = setTimeout(safe(flush), wait);
      return;
    }
    // Taken, refused for good (400, 403, 413) or given up on: never sent again.
    attempt = 0;
    if (queue.length) later(0);
  });
  post(body(batch)).then(
    (r) => done(r.status, r.headers.get('Retry-After')),
    () => done(0)
  );
};

/** Called first when the page goes away, so that a tag can queue its last events. */
const departing = [];

/** The page is going away (or hidden, maybe for good): send everything now. */
const leave = () => {
  departing.forEach((f) => safe(f)());
  clearTimeout(timer);
  timer = 0;
  while (queue.length) {
    const text = body(queue.splice(0, MAX_BATCH));
    if (!(navigator.sendBeacon && navigator.sendBeacon(endpoint, text))) post(text).catch(() => 0);
  }
};

W.addEventListener('pagehide', safe(leave));
D.addEventListener('visibilitychange', safe(() => D.visibilityState == 'hidden' && leave()));

/** The page-facing API, shared by both tags. */
const api = (W.exatom = W.exatom || {});
