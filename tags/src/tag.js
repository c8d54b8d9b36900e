// The event tag: page views, the forms on a page and how a visitor moves through their
// fields. Never a value: a field is only ever reported as empty ("") or holding data ("*").

const FIELD = /^(INPUT|SELECT|TEXTAREA)$/;
const NOT_A_FIELD = /^(hidden|submit|button|image|reset)$/;
const CHECKABLE = /^(radio|checkbox)$/;
const HESITATION = 'ExatomFormStartHesitation';
const hesitationMs = attr('hesitation-ms') === '' ? 10000 : +attr('hesitation-ms');

let forms = [];
let seq = 0;
let url = location.href;
// Per field: the value last reported by an input event since the field was focused.
let reported = new WeakMap();

const blocked = (el) => !!el.closest(BLOCK);
const silent = (el) => !!el.closest(ITEMPROP);
const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
const own = (el, name) => (el.hasAttribute('itemprop') ? '' : el.getAttribute(name) || '');

/** The visible text of an element: never form controls, scripts, blocked regions or
 * anything inside an `itemprop` element; masked regions become "***"; e-mails, dates and
 * digits scrubbed. */
const text = (el, masked) => {
  if (!el || silent(el) || blocked(el)) return '';
  if (masked || el.closest(MASK)) return '***';
  let out = '';
  const walk = (n) => {
    for (let c = n.firstChild; c; c = c.nextSibling) {
      if (c.nodeType == 3) out += c.nodeValue;
      else if (c.nodeType == 1 && !/^(INPUT|SELECT|TEXTAREA|BUTTON|OPTION|SCRIPT|STYLE)$/.test(c.tagName) && !c.hasAttribute('itemprop') && !c.matches(BLOCK)) {
        if (c.matches(MASK)) out += ' *** ';
        else walk(c);
      }
    }
  };
  walk(el);
  return scrub(out);
};

/** The fields of a radio or checkbox group sharing a name are one field. */
const group = (el) =>
  CHECKABLE.test(el.type) && el.name && el.form
    ? [...el.form.querySelectorAll('input')].filter((x) => x.name == el.name && x.type == el.type)
    : [el];

/** Whether the field holds anything: all the tag ever learns about a value. */
const filled = (el) => group(el).some((x) => (CHECKABLE.test(x.type) ? x.checked : x.value !== ''));

const legend = (el) => {
  const set = el.closest('fieldset');
  return set ? text(set.querySelector('legend')) : '';
};

/** A field's label: its <label>, aria-label or aria-labelledby. A radio group is labelled
 * by its legend (or first option), so the label never tells which option was chosen. */
const label = (el) => {
  if (silent(el)) return '';
  const masked = !!el.closest(MASK);
  if (CHECKABLE.test(el.type) && group(el).length > 1) return legend(el) || text(el.labels && el.labels[0], masked);
  const aria = el.getAttribute('aria-label');
  const by = el.getAttribute('aria-labelledby');
  return (
    text(el.labels && el.labels[0], masked) ||
    (aria && (masked ? '***' : scrub(aria))) ||
    (by && text(D.getElementById(by.split(' ')[0]), masked)) ||
    ''
  );
};

/** The tracked fields of a form, one element standing for each field, in page order. */
const fieldsOf = (form) => {
  const out = [];
  form.querySelectorAll('input,select,textarea').forEach((el) => {
    if (!NOT_A_FIELD.test(el.type) && !blocked(el) && group(el)[0] == el) out.push(el);
  });
  return out;
};

const describe = (el, order, full) => {
  const f = { name: own(el, 'name'), id: own(el, 'id'), tag: el.tagName.toLowerCase(), type: el.type || '', order, label: label(el) };
  if (full) {
    f.visible = visible(el);
    f.group = legend(el);
  }
  return f;
};

const page = () => clean(location.href);

/** The form's record, found or (when `make`) created; forms in blocked regions have none. */
const record = (el, make) => {
  let rec = forms.find((r) => r.el == el);
  if (!rec && make && !blocked(el)) {
    rec = { el, ref: { name: own(el, 'name'), id: own(el, 'id'), order: forms.length }, sig: '', shown: 0 };
    forms.push(rec);
  }
  return rec;
};

/** Finds forms and their fields; sends a form_view for a new form or a changed field set. */
const scan = () => {
  D.querySelectorAll('form').forEach((el) => {
    const fields = fieldsOf(el);
    if (!fields.length) return;
    const rec = record(el, true);
    const sig = fields.map((f) => f.name + '#' + f.id).join('|');
    if (!rec) return;
    // Elements re-rendered under the same names are the same fields: no new form_view.
    rec.fields = fields;
    if (sig == rec.sig) return;
    rec.sig = sig;
    const described = fields.map((f, i) => describe(f, i, true));
    const title = own(el, 'aria-label');
    send({
      type: 'form_view',
      page: page(),
      form: {
        ...rec.ref,
        html_id: own(el, 'id'),
        action: clean(own(el, 'action')),
        title: silent(el) ? '' : el.closest(MASK) ? '***' : title ? scrub(title) : text([...el.querySelectorAll('legend,h1,h2,h3,h4,h5,h6')].find((h) => !blocked(h))),
        visible: visible(el),
        fields: described,
      },
    });
  });
  tick();
};

/** Counts how long each unstarted form has been visible; past the threshold, raises the
 * hesitation event once so the site can offer help. */
let ticking = 0;
const tick = () => {
  if (ticking || !(hesitationMs > 0)) return;
  ticking = setInterval(
    safe(() => {
      const waiting = forms.filter((r) => !r.started && !r.hesitated);
      waiting.forEach((r) => {
        if (r.el.isConnected && visible(r.el) && (r.shown += 250) >= hesitationMs) {
          r.hesitated = 1;
          r.el.dispatchEvent(new CustomEvent(HESITATION, { bubbles: true, detail: { form: r.ref } }));
        }
      });
      if (!waiting.length) ticking = clearInterval(ticking) || 0;
    }),
    250
  );
};

const formEvent = (rec, event, field, value) => {
  const e = { type: 'form_event', page: page(), form: rec.ref, event, seq: ++seq };
  if (field) {
    e.field = describe(field, rec.fields.indexOf(field), false);
    if (event != 'focus') e.value = value;
  }
  send(e);
};

const autofilled = (el) => {
  for (const s of [':autofill', ':-webkit-autofill']) {
    try {
      return el.matches(s);
    } catch (e) {
      // This browser does not know the selector: try the next one.
    }
  }
  return false;
};

/** focus, blur, input (one per change between empty and filled), change, invalid. */
const onField = (e) => {
  const target = e.target;
  if (!target || !FIELD.test(target.tagName) || NOT_A_FIELD.test(target.type) || blocked(target)) return;
  const form = target.form || target.closest('form');
  const el = group(target)[0];
  const known = () => record(form) && record(form).fields.indexOf(el) >= 0;
  // A form or field the last scan has not seen yet (added a moment ago): look again.
  if (!known()) scan();
  if (!known()) return;
  const rec = record(form);
  let kind = e.type;
  const value = filled(el) ? '*' : '';
  if (kind == 'focus') reported.delete(el);
  if (kind == 'input') {
    // Checkboxes, radios and selects report their change event instead.
    if (CHECKABLE.test(el.type) || el.tagName == 'SELECT') return;
    if (autofilled(target) || D.activeElement != target) kind = 'autofill';
    else if (reported.get(el) === value) return;
    reported.set(el, value);
  }
  if (kind == 'input' || kind == 'change' || kind == 'autofill') rec.started = 1;
  formEvent(rec, kind, el, value);
};

const onForm = (e) => {
  const rec = record(e.target);
  if (!rec) return;
  formEvent(rec, e.type);
  // The page may navigate away now.
  if (e.type == 'submit') later(0);
};

// Clicks, scroll depth and the page's own errors: where visitors click (a position and an
// element path, never what a field holds), how far down they read, and what broke.
const INTERACTIVE = 'a,button,input,select,textarea,label,summary,[role=button],[role=link],[onclick],[contenteditable]';
// A stack frame's location: Chrome `at fn (url:1:2)` or `at url:1:2`, Firefox and Safari
// `fn@url:1:2`. Only http(s) scripts (the collector takes no other): eval, extensions skipped.
const FRAME = /(https?:\/\/[^\s()]*?):(\d+):(\d+)\)?$/;
const URLS = /[a-z][\w+.-]*:\/\/[^\s'"<>()]+/gi;
const round = Math.round;

/** A URL as origin and path only (a query or fragment can carry a token or what a visitor
 * typed); for a URL without a host (data:, blob:, file:) only its scheme. */
const bare = (href) => {
  try {
    const u = new URL(href);
    return u.host ? u.protocol + '//' + u.host + u.pathname : u.protocol;
  } catch (e) {
    return '';
  }
};
const OWN = bare(me && me.src);

/** The clicked element as `tag#id.class>…`, at most 5 levels up. Ids and classes are
 * scrubbed (they can hold a user id or an e-mail); an `itemprop` element gives its tag
 * only; in a blocked region only its outermost element is named, nothing inside it. */
const path = (el) => {
  for (let b = el.closest(BLOCK); b; b = b.parentElement && b.parentElement.closest(BLOCK)) el = b;
  const parts = [];
  for (let i = 0; el && i < 5; i++, el = el.parentElement) {
    let s = el.tagName.toLowerCase();
    if (!el.hasAttribute('itemprop')) {
      if (el.id) s += '#' + scrub(el.id);
      [...el.classList].slice(0, 3).forEach((c) => (s += '.' + scrub(c)));
    }
    parts.unshift(s);
  }
  return parts.join('>').slice(-200);
};

let taps = []; // the last second's clicks, for rage clicks
let waiting = []; // clicks waiting out their second, to know whether they were dead

/** A click is sent a second later: by then it is known whether it changed anything. */
const onClick = (e) => {
  // A button pressed with the keyboard (or clicked by a script) clicks at no position.
  if (!e.detail) return;
  const t = e.target;
  const x = e.pageX;
  const y = e.pageY;
  const now = Date.now();
  const href = location.href;
  const interactive = !!t.closest(INTERACTIVE);
  // Rage: the third click (or more) within a second and 30 px.
  taps = taps.filter((c) => now - c.t < 1000);
  const near = taps.filter((c) => Math.hypot(c.x - x, c.y - y) <= 30).length;
  taps.push({ x, y, t: now });
  const click = {
    type: 'click',
    page: page(),
    x: Math.min(1, Math.max(0, round((x / (D.documentElement.scrollWidth || 1)) * 1e4) / 1e4)),
    y: Math.max(0, round(y)),
    viewport_width: W.innerWidth,
    path: path(t),
    interactive,
    rage: near > 1,
    dead: false,
    ts: iso(),
  };
  // Dead: a click on something not meant to be clicked that changed neither the DOM nor the URL.
  let changed = interactive;
  const watch = new MutationObserver(() => (changed = true));
  if (!interactive) watch.observe(D.documentElement, { childList: true, subtree: true, attributes: true, characterData: true });
  const settle = (leaving) => {
    if (waiting.indexOf(settle) < 0) return;
    waiting = waiting.filter((f) => f != settle);
    watch.disconnect();
    click.dead = !leaving && !changed && location.href == href;
    send(click);
  };
  waiting.push(settle);
  setTimeout(safe(settle), 1000);
};

let deepest = 0; // how far down this page has been seen, in % of its height
let told = 0; // the depth last sent
let measuring = 0;

/** Sends the depth reached when it is deeper than the one last sent. */
const scrolled = (p) => deepest > told && send({ type: 'scroll', page: p || page(), depth: (told = deepest) });

const measure = () => {
  measuring = 0;
  const seen = round((100 * (W.scrollY + W.innerHeight)) / (D.documentElement.scrollHeight || 1));
  deepest = Math.max(deepest, Math.min(100, seen));
  // One event per quarter crossed: a jump from 10 to 80 % is one event, depth 80.
  if (((deepest / 25) | 0) > ((told / 25) | 0)) scrolled();
};

// Scroll events come many a second: the depth is measured at most every 200 ms.
const onScroll = () => (measuring = measuring || setTimeout(safe(measure), 200));

let errors = 0;

/** The page's uncaught errors and unhandled rejections, with their message scrubbed and
 * URLs reduced to origin and path. At most 20 a page view: a page throwing in a loop costs
 * a comparison per error. The tag's own errors never count. */
const onError = (e) => {
  if (errors > 19 || e.target != W) return;
  const x = e.error || e.reason;
  const frames = [];
  String((x && x.stack) || '')
    .split('\n', 50)
    .forEach((l) => {
      const m = frames.length < 5 && l.trim().match(FRAME);
      if (m) frames.push({ file: bare(m[1]), line: +m[2], column: +m[3] });
    });
  const first = frames[0] || {};
  const at = e.filename ? { file: bare(e.filename), line: e.lineno, column: e.colno } : first;
  if (OWN && (at.file == OWN || first.file == OWN)) return;
  errors++;
  send({
    type: 'js_error',
    page: page(),
    message: scrub(String((x && x.message) || e.message || x).slice(0, 1000).replace(URLS, bare)) || 'Error',
    source: /^http/.test(at.file) ? at.file : '',
    line: at.line || 0,
    column: at.column || 0,
    frames,
  });
};

/** The page goes away: the clicks still waiting and the final depth are sent with it. */
const depart = () => {
  measure();
  waiting.forEach((f) => f(1));
  scrolled();
};

const pageView = (referrer) => {
  seq = errors = deepest = told = 0;
  const t = D.querySelector('title');
  const e = { type: 'page_view', page: page(), title: t && silent(t) ? '' : scrub(D.title), referrer: clean(referrer) };
  send(e);
  // The replay recorder joins what it records to this page view.
  api.pageView = e.id;
};

/** A single-page app changed the URL (History API): a new page with its own forms. */
const route = () => {
  if (location.href.split('#')[0] == url.split('#')[0]) return;
  const previous = url;
  url = location.href;
  forms = [];
  reported = new WeakMap();
  // The depth reached on the page left, then the new page's own.
  scrolled(clean(previous));
  pageView(previous);
  scan();
  measure();
};

const start = () => {
  pageView(D.referrer);
  scan();
  // The recorder: the collector answers with it only on sites with replay on, for the
  // visitors in the site's sample (and with nothing for everyone else).
  const s = D.createElement('script');
  s.async = true;
  s.src = collector + '/replay.js?site=' + encodeURIComponent(site);
  (D.head || D.documentElement).appendChild(s);
  // A page shorter than the window is seen to its end at once; measured after images load.
  if (D.readyState == 'complete') measure();
  else W.addEventListener('load', safe(measure));
  let pending = 0;
  new MutationObserver(
    safe(() => {
      pending = pending || setTimeout(safe(() => ((pending = 0), scan())), 250);
    })
  ).observe(D.documentElement, { childList: true, subtree: true });
};

if (site && !api.tag) {
  api.tag = 1;
  ['focus', 'blur', 'input', 'change', 'invalid'].forEach((t) => D.addEventListener(t, safe(onField), true));
  ['submit', 'reset'].forEach((t) => D.addEventListener(t, safe(onForm), true));
  ['pushState', 'replaceState'].forEach((m) => {
    const original = history[m];
    history[m] = function () {
      const result = original.apply(this, arguments);
      setTimeout(safe(route), 50);
      return result;
    };
  });
  W.addEventListener('popstate', safe(() => setTimeout(safe(route), 50)));
  D.addEventListener('click', safe(onClick), { capture: true, passive: true });
  W.addEventListener('scroll', safe(onScroll), { passive: true });
  // Bubbling only: resource load errors (fired on elements) never reach these.
  W.addEventListener('error', safe(onError));
  W.addEventListener('unhandledrejection', safe(onError));
  departing.push(depart);

  /** Reports a tooltip shown, clicked or closed; returns its id for the later actions. */
  api.tooltip = safe((action, trigger, id, form) => {
    const e = { type: 'tooltip', page: page(), action, trigger: trigger || HESITATION, tooltip_id: id || uuid() };
    const rec = form && form.tagName ? record(form) : null;
    if (rec || (form && !form.tagName)) e.form = rec ? rec.ref : form;
    send(e);
    return e.tooltip_id;
  });

  if (D.readyState == 'loading') D.addEventListener('DOMContentLoaded', safe(start));
  else safe(start)();
}
