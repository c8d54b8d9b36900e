// The replay recorder: rrweb's recorder with Exatom's privacy rules (privacy.js, the same
// file the event tag uses), applied here before anything is sent. build.sh bundles it with
// @rrweb/record; tag.js loads it from /replay.js, which the collector answers with this
// file only on sites with replay on and for visitors in the site's sample.
//
// What rrweb is told (it never serializes a blocked element, and gives every text and input
// to our functions) is the first pass; `safe_event` then walks every event before it is
// queued, so that an attribute rrweb records as it is (alt, title, data-*, value on any
// element) is removed or masked too.

import { record } from '@rrweb/record';

const W = window;
const D = document;
const me = D.currentScript;
const from = new URL((me && me.src) || location.href);
const site = from.searchParams.get('site') || '';
const endpoint = from.origin + '/v1/replay';
const api = (W.exatom = W.exatom || {});

// itemprop elements are recorded without any content: as blocked placeholders of their size.
const BLOCKED = BLOCK + ',' + ITEMPROP;
// Where a visitor types outside form controls: its text is "*", as a control's value is.
const TYPED = '[contenteditable]:not([contenteditable="false"])';
const CONTROL_VALUE = /^(input|textarea|select)$/;
const REMOVED = /^(alt|placeholder|title|checked|selected|data-.*)$/i;
const URL_ATTR = /^(href|src|action|poster|formaction|cite)$/i;
// Attributes that are layout, not text (and stylesheets, `_cssText`): digits in them are
// sizes and class names.
const LAYOUT = /^(style|class|id|for|name|_cssText|rr_width|rr_height|width|height|type|role|rel)$/i;
const EMAIL = /[\w.%+-]+@[\w-]+(\.[\w-]+)+/g;

/** An identifier keeps short numbers (`col-6`, `address_line_2`) but no e-mail and no run
 * of six digits or more, as the anonymizer's identifier rule. */
const identifier = (s) => s.replace(EMAIL, 'privacy@exatom.io').replace(/\d{6,}/g, (m) => '#'.repeat(m.length));

/** One element's attributes made safe, in place. */
const attributes = (tag, attrs) => {
  for (const name in attrs) {
    const v = attrs[name];
    if (REMOVED.test(name)) delete attrs[name];
    else if (name.toLowerCase() == 'value') {
      if (CONTROL_VALUE.test(tag)) attrs[name] = v ? '*' : '';
      else delete attrs[name];
    } else if (typeof v != 'string') continue;
    else if (name.toLowerCase() == 'srcset') delete attrs[name];
    else if (URL_ATTR.test(name)) attrs[name] = /^data:/i.test(v) ? v : clean(v);
    else if (LAYOUT.test(name)) attrs[name] = identifier(v);
    else attrs[name] = mask(v);
  }
};

/** A serialized node and its children made safe, in place. */
const node = (n) => {
  if (!n) return;
  if (n.type == 2) attributes(String(n.tagName).toLowerCase(), n.attributes || (n.attributes = {}));
  else if (n.type == 3 && !n.isStyle) n.textContent = mask(n.textContent);
  else if (n.type == 5) n.textContent = '';
  (n.childNodes || []).forEach(node);
};

const tagOf = (id) => {
  const n = record.mirror.getNode(id);
  return n && n.tagName ? n.tagName.toLowerCase() : '';
};

// Per input: the masked value last recorded. With every value "*" or "", only a field
// becoming empty or filled is kept: no event per keystroke, so no typing rhythm.
const lastInput = new Map();

/** The event made safe to send, or null when it carries nothing new. */
const safeEvent = (e) => {
  const d = e.data || {};
  if (e.type == 2) node(d.node);
  else if (e.type == 4) d.href = clean(d.href);
  else if (e.type == 3 && d.source == 0) {
    (d.adds || []).forEach((a) => node(a.node));
    (d.texts || []).forEach((t) => (t.value = t.value == null ? t.value : mask(t.value)));
    (d.attributes || []).forEach((a) => attributes(tagOf(a.id), a.attributes || {}));
  } else if (e.type == 3 && d.source == 5) {
    d.text = d.text ? '*' : '';
    d.isChecked = false;
    if (lastInput.get(d.id) === d.text) return null;
    lastInput.set(d.id, d.text);
  } else if (e.type == 5 || e.type == 6) return null; // custom and plugin events: none are ours
  return e;
};

// Limits: what one page may send. The collector holds the same ones (README, "Replay").
const MAX_BATCH_BYTES = 512 * 1024; // JSON before gzip; a batch leaves at this size
const MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024; // a full snapshot larger is a placeholder
const MAX_PAGE_BATCHES = 720; // an hour at one batch per 5 s
const EVERY_MS = 5000;

/** A page too large to record: an empty document that says so, in place of its snapshot. */
const placeholder = (e) => {
  e.data.node = {
    type: 0,
    id: 1,
    childNodes: [
      { type: 2, id: 2, tagName: 'html', attributes: {}, childNodes: [
        { type: 2, id: 3, tagName: 'body', attributes: {}, childNodes: [
          { type: 3, id: 4, textContent: 'This page was too large to record.' },
        ] },
      ] },
    ],
  };
};

let page = '';
let seq = 0;
let queue = [];
let queued = 0;
let stopped = 0;

const body = (events) => JSON.stringify({ site, page_view_id: page, seq: seq++, sent_at: new Date().toISOString(), events });

const gzip = (text) =>
  W.CompressionStream
    ? new Response(new Blob([text]).stream().pipeThrough(new CompressionStream('gzip'))).blob()
    : Promise.resolve(new Blob([text]));

const post = (blob, attempt) =>
  fetch(endpoint, { method: 'POST', body: blob, keepalive: blob.size < 60000, credentials: 'omit', headers: { 'Content-Type': 'text/plain' } }).then(
    (r) => {
      // 413: refused for good (too large); 429, 503: later, as the events' sender does.
      if ((r.status == 429 || r.status >= 500) && attempt < 3)
        setTimeout(() => post(blob, attempt + 1), 1000 * Math.max(+r.headers.get('Retry-After') || 0, 2 ** attempt));
    },
    () => attempt < 3 && setTimeout(() => post(blob, attempt + 1), 2000 * 2 ** attempt)
  );

/** Sends what is queued; `leaving` sends it as it is, by beacon, since the page is going. */
const flush = (leaving) => {
  if (!queue.length || !page) return;
  if (seq >= MAX_PAGE_BATCHES) return stop();
  const text = body(queue);
  queue = [];
  queued = 0;
  if (leaving && navigator.sendBeacon && navigator.sendBeacon(endpoint, new Blob([text], { type: 'text/plain' }))) return;
  gzip(text).then((b) => post(b, 0), () => 0);
};

const stop = () => {
  stopped = 1;
  queue = [];
  if (stopRecording) stopRecording();
};

/** A new page view (the tag's id changed: a single-page app's route): what was recorded
 * goes with the old one, and the new one starts with a full snapshot of its own. */
const follow = () => {
  if (api.pageView && api.pageView != page) {
    if (page) flush();
    page = api.pageView;
    seq = 0;
    if (stopRecording) record.takeFullSnapshot();
  }
};

const emit = (e) => {
  if (stopped || !safeEvent(e)) return;
  let size = JSON.stringify(e).length;
  if (e.type == 2 && size > MAX_SNAPSHOT_BYTES) {
    placeholder(e);
    size = 200;
  }
  queue.push(e);
  queued += size;
  if (queued >= MAX_BATCH_BYTES || e.type == 2) setTimeout(() => flush(), 0);
};

let stopRecording = null;
if (site && !api.recording) {
  api.recording = 1;
  follow();
  stopRecording = record({
    emit,
    blockSelector: BLOCKED,
    maskTextSelector: '*',
    maskTextFn: (t, el) => (el && el.closest(TYPED) ? (t.trim() ? '*' : t) : el && el.closest(MASK) ? t.replace(/\S/g, '*') : mask(t)),
    maskInputOptions: {
      color: true, date: true, 'datetime-local': true, email: true, month: true, number: true, range: true, search: true,
      tel: true, text: true, time: true, url: true, week: true, password: true, hidden: true, textarea: true, select: true,
    },
    maskInputFn: (v) => (v ? '*' : ''),
    slimDOMOptions: 'all',
    sampling: { scroll: 150, media: 800, input: 'last' },
  });
  setInterval(() => (follow(), flush()), EVERY_MS);
  setInterval(follow, 1000);
  W.addEventListener('pagehide', () => flush(1));
  D.addEventListener('visibilitychange', () => D.visibilityState == 'hidden' && flush(1));
}
