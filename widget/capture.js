/*! personalize data-layer capture | Apache-2.0 | docs/widget.md#capturing-your-data-layer
 * Loaded by widget.js only when its tag says data-capture="ga4" or "segment": turns the shop's
 * existing e-commerce tracking into personalize events, so no personalize('track', …) call is needed.
 * Readable source: widget/capture.js in the personalize repository (static/capture.js is built from it). */
(function (w) {
  'use strict';
  var me = document.currentScript, mode = me ? me.getAttribute('data-capture') || '' : '';

  function pz(a, b, c) {
    try { if (w.personalize && w.personalize.loaded) w.personalize(a, b, c); } catch (e) {}
  }
  // [{id, quantity, price}] from GA4 items (item_id) or Segment products (product_id or sku).
  function lines(items) {
    var out = [];
    (Array.isArray(items) ? items : []).forEach(function (i) {
      var id = i && (i.item_id != null ? i.item_id : i.product_id != null ? i.product_id : i.sku);
      if (id != null && id !== '') out.push({ product_id: String(id), quantity: i.quantity == null ? 1 : i.quantity, price: i.price });
    });
    return out;
  }
  // One shop event in our words: what was viewed, added to the cart, ordered.
  function seen(kind, data, items) {
    data = data || {};
    items = lines(items);
    if (kind === 'view') {
      items.forEach(function (i) { pz('view', { product_id: i.product_id }); });
    } else if (kind === 'add') {
      items.forEach(function (i) { pz('track', 'product_added', { product_id: i.product_id, quantity: i.quantity, price: i.price, currency: data.currency }); });
    } else if (kind === 'order' && items.length) {
      pz('track', 'order_completed', {
        order_id: data.order_id, items: items, currency: data.currency,
        revenue: data.revenue
      });
    }
  }

  // ---- GA4: dataLayer.push({event: 'view_item', ecommerce: {...}}) or gtag('event', 'view_item', {...})
  var GA4 = { view_item: 'view', add_to_cart: 'add', purchase: 'order' };
  function ga4(entry) {
    try {
      var name, data;
      if (entry && entry[0] === 'event' && typeof entry[1] === 'string') { name = entry[1]; data = entry[2]; } // gtag() pushes its arguments
      else if (entry && typeof entry.event === 'string') { name = entry.event; data = entry.ecommerce; }
      if (!GA4[name] || !data) return;
      seen(GA4[name], { order_id: data.transaction_id, revenue: data.value, currency: data.currency }, data.items);
    } catch (e) {}
  }

  // ---- Segment: analytics.track('Product Viewed' | 'Product Added' | 'Order Completed', properties)
  var SEGMENT = { 'Product Viewed': 'view', 'Product Added': 'add', 'Order Completed': 'order' };
  function segment(name, p) {
    try {
      if (!SEGMENT[name] || !p) return;
      var items = name === 'Order Completed' ? p.products : [p];
      seen(SEGMENT[name], { order_id: p.order_id, revenue: p.total != null ? p.total : p.revenue, currency: p.currency }, items);
    } catch (e) {}
  }

  try {
    if (mode === 'ga4') {
      // What the page pushed before this script came, then every later push.
      var dl = w.dataLayer = w.dataLayer || [], push = dl.push;
      [].slice.call(dl).forEach(ga4);
      dl.push = function () {
        var r = push.apply(this, arguments);
        [].forEach.call(arguments, ga4);
        return r;
      };
    } else if (mode === 'segment') {
      var listen = function () {
        var a = w.analytics;
        if (!a || typeof a.on !== 'function') return false;
        // The snippet's stub queues calls until analytics.js loads: read the queued tracks; the listener
        // hears every later one (the stub queues the listener too, after them).
        if (!a.initialized && Array.isArray(a)) a.forEach(function (c) { if (c && c[0] === 'track') segment(c[1], c[2]); });
        a.on('track', segment);
        return true;
      };
      if (!listen()) w.addEventListener('load', listen);
    } else {
      console.warn('personalize: data-capture="' + mode + '" is not known; use "ga4" or "segment"');
    }
  } catch (e) {}
})(window);
