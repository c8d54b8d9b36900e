// The conversion tag, for thank-you pages: one `conversion` event, from the script tag's
// data-tag, data-transaction-id, data-revenue and data-currency, or from a call to
// exatom.conversion({tag, transaction_id, revenue, currency}).

/** Reports a conversion; revenue is sent only when it is a number ≥ 0. */
api.conversion = safe((o) => {
  o = o || {};
  const e = { type: 'conversion', page: clean(location.href), tag: String(o.tag || attr('tag')) };
  if (o.transaction_id) e.transaction_id = String(o.transaction_id);
  const revenue = o.revenue === '' || o.revenue == null ? NaN : +o.revenue;
  if (revenue >= 0) e.revenue = revenue;
  if (o.currency) e.currency = String(o.currency).toUpperCase();
  if (site) send(e);
});

if (attr('tag'))
  api.conversion({ transaction_id: attr('transaction-id'), revenue: attr('revenue'), currency: attr('currency') });
