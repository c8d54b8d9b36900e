// The event tag: page views, the forms on a page and how a visitor moves through their
// fields. Never a value: a field is only ever reported as empty ("") or holding data ("*").

// Elements (and their children) that are not tracked at all, and those whose texts are masked.
const BLOCK = '.ex-block,.rr-block,.fs-exclude,.fs-block,.data-hj-suppress,[data-hj-suppress]';
const MASK = '.ex-mask,.fs-mask,.rr-mask';
// Structured data (schema.org microdata: names, addresses, prices, a person's details):
// an element with `itemprop` and everything inside it give no text at all.
const ITEMPROP = '[itemprop]';
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

const pageView = (referrer) => {
  seq = 0;
  const t = D.querySelector('title');
  send({ type: 'page_view', page: page(), title: t && silent(t) ? '' : scrub(D.title), referrer: clean(referrer) });
};

/** A single-page app changed the URL (History API): a new page with its own forms. */
const route = () => {
  if (location.href.split('#')[0] == url.split('#')[0]) return;
  const previous = url;
  url = location.href;
  forms = [];
  reported = new WeakMap();
  pageView(previous);
  scan();
};

const start = () => {
  pageView(D.referrer);
  scan();
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
