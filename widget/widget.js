/*! personalize widget | Apache-2.0 | docs/widget.md
 * One async <script> tag: sends visitor events and renders recommendations into every
 * [data-personalize-slot]. Plain ES2017, no dependencies. Any failure leaves the page as it was.
 * Readable source: widget/widget.js in the personalize repository (static/widget.js is built from it). */
(function (w, d) {
  'use strict';
  var prev = w.personalize;
  if (prev && prev.loaded) {
    try { console.warn('personalize: widget.js is included twice; the second copy does nothing'); } catch (e) {}
    return;
  }
  var me = d.currentScript || d.querySelector('script[data-shop][src*="widget"]'), API;
  if (!me || !me.dataset.shop) return;
  var ds = me.dataset, KEY = ds.shop, NONCE = me.nonce || me.getAttribute('nonce') || '';
  try {
    API = (ds.api ? new URL(ds.api, location.href).href : new URL(me.src, location.href).origin).replace(/\/+$/, '');
  } catch (e) { return; }
  var VID = 'pz_vid', OUT = 'pz_outbox', RECS = 'pz_recs', OPT = 'pz_optout';
  // The fields each event type may carry besides url, title, referrer and properties. The server
  // refuses unknown fields (and rejects such an event), so anything else goes into properties.
  var TYPES = {
    page_viewed: '',
    product_viewed: 'product_id rec_id slot position price',
    product_added: 'product_id quantity price currency rec_id slot position',
    order_completed: 'order_id items revenue currency rec_id email customer_id',
    identify: 'email customer_id traits token',
    rec_impression: 'rec_id slot items strategy',
    rec_clicked: 'rec_id slot product_id position strategy'
  };
  var NUMBERS = ['position', 'quantity', 'price', 'revenue'];
  var consent = ds.consent !== 'required';
  var queue = [], flying = {}, orders = {}, backoff = 0, timer = 0, memVid = '', tmpVid = '', lastPage = '', lastView = '', warned = 0;
  var referrer = d.referrer, route = location.pathname + location.search;
  var seen = {}, gen = new WeakMap(), shown = new WeakMap(), sheet = null, land = {};
  // A journey email's link says who it was for (pz_token) and which list it came from (pz_rec):
  // taken out of the address at once, so no URL we report (or the visitor shares) carries them.
  try {
    var lu = new URL(location.href);
    ['pz_token', 'pz_rec'].forEach(function (k) { land[k] = lu.searchParams.get(k); lu.searchParams.delete(k); });
    if (land.pz_token || land.pz_rec) history.replaceState(history.state, '', lu.href), route = lu.pathname + lu.search;
  } catch (e) {}

  // ---- storage, ids, privacy ----
  function store(k, v) {
    try {
      if (v === undefined) return localStorage.getItem(k);
      if (v === null) localStorage.removeItem(k); else localStorage.setItem(k, v);
    } catch (e) {}
    return null;
  }
  function list(k) {
    try {
      var v = JSON.parse(store(k));
      return Array.isArray(v) ? v : [];
    } catch (e) { return []; }
  }
  function rid(n) {
    var abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', a = new Uint8Array(n), s = '', i;
    try { crypto.getRandomValues(a); } catch (e) { for (i = 0; i < n; i++) a[i] = Math.random() * 256; }
    for (i = 0; i < n; i++) s += abc[a[i] & 63];
    return s;
  }
  function blocked() {
    return !consent || navigator.globalPrivacyControl === true || store(OPT) === '1';
  }
  // The visitor id: stored first-party only when allowed; otherwise a throwaway id for this page.
  function visitor() {
    if (blocked()) return tmpVid || (tmpVid = rid(22));
    var v = store(VID);
    if (!v || !/^[\w-]{8,64}$/.test(v)) {
      v = memVid || rid(22);
      store(VID, v);
    }
    return (memVid = v);
  }
  function forget() {
    queue = [];
    [VID, OUT, RECS].forEach(function (k) { store(k, null); });
  }

  // A refused or failed request says why, once per page, in the server's words (the answer to a
  // wrong key or origin carries CORS headers, so the page can read it).
  function refused(r) {
    if (warned) return;
    warned = 1;
    (r && r.json ? r.json() : Promise.reject()).then(function (b) {
      console.warn('personalize: ' + b.error.message + ' (' + r.status + ' ' + b.error.code + ')');
    }).catch(function () {
      console.warn('personalize: ' + (r && r.status ? API + ' answered ' + r.status : 'no answer from ' + API + '; is the server running and reachable?'));
    });
  }

  // ---- attribution map: product id -> rec_id of the list it was clicked in ----
  function recFor(pid) {
    var hit = list(RECS).filter(function (p) { return p[0] === String(pid); })[0];
    return hit && hit[1];
  }
  function remember(pid, rec) {
    if (blocked()) return;
    var m = list(RECS).filter(function (p) { return p[0] !== pid; });
    m.push([pid, rec]);
    store(RECS, JSON.stringify(m.slice(-50)));
  }

  // ---- events ----
  function scalar(v) {
    return v === null || /^(string|number|boolean)$/.test(typeof v);
  }
  function event(type, props, ctx) {
    if (blocked() || TYPES[type] == null) return;
    var e = { id: rid(22), type: type, visitor: visitor(), ts: Date.now(), url: ctx.url, title: ctx.title }, extra = {}, k, v;
    var allowed = ('url title referrer ' + TYPES[type]).split(' ');
    props = props || {};
    for (k in props) {
      v = props[k];
      if (NUMBERS.indexOf(k) >= 0) v = v == null || v === '' ? null : +v;
      if (v == null || v !== v) continue;
      if (allowed.indexOf(k) >= 0) e[k] = v;
      else if (k === 'properties' && typeof v === 'object') Object.assign(extra, v);
      else extra[k] = v;
    }
    for (k in extra) if (!scalar(extra[k])) delete extra[k];
    if (Object.keys(extra).length) e.properties = extra;
    if (e.product_id != null) e.product_id = String(e.product_id);
    // One order, one event: the same order tracked twice (by the shop and by data-layer capture, or on a
    // reloaded thank-you page) is sent once, under an id the server keeps it by.
    if (e.order_id != null) {
      var oid = e.order_id = String(e.order_id);
      if (orders[oid]) return;
      orders[oid] = 1;
      if (/^[\w.:-]{1,60}$/.test(oid)) e.id = 'o:' + oid;
    }
    if (/^(product_viewed|product_added|rec_clicked)$/.test(type) ? !e.product_id :
      type === 'order_completed' ? !(Array.isArray(e.items) && e.items.length) :
      type === 'identify' && !e.email && !e.customer_id && !e.token) {
      return console.warn('personalize: ' + type + ' lacks a required field; not sent');
    }
    if (!e.rec_id && type !== 'rec_impression') {
      var ids = e.product_id ? [e.product_id] : (Array.isArray(e.items) ? e.items.map(function (i) { return i && i.product_id; }) : []);
      for (k = 0; k < ids.length && !e.rec_id; k++) e.rec_id = recFor(ids[k]);
      if (!e.rec_id) delete e.rec_id;
    }
    queue.push(e);
    if (!timer) timer = setTimeout(flush, 1000);
  }
  // Events wait in the outbox (localStorage, so a later page has them too) until the server answers
  // that it has them; a refusal (5xx, 429, no answer) is tried again later. Ids make a re-send harmless.
  function flush() {
    clearTimeout(timer);
    timer = 0;
    if (blocked()) return (queue = []);
    var all = list(OUT).concat(queue).slice(-300), todo = [];
    queue = [];
    store(OUT, all.length ? JSON.stringify(all) : null);
    all.forEach(function (e) { if (!flying[e.id]) todo.push(flying[e.id] = e); });
    for (var i = 0; i < todo.length; i += 100) send(todo.slice(i, i + 100));
  }
  function send(batch) {
    var url = API + '/api/v1/events', body = JSON.stringify({ key: KEY, events: batch });
    function done(ok) {
      var sent = {};
      batch.forEach(function (e) { delete flying[e.id]; sent[e.id] = 1; });
      if (!ok) return timer || (timer = setTimeout(flush, backoff = Math.min(60000, backoff * 2 || 2000)));
      backoff = 0;
      var rest = list(OUT).filter(function (e) { return !sent[e.id]; });
      store(OUT, rest.length ? JSON.stringify(rest) : null);
    }
    try {
      fetch(url, { method: 'POST', body: body, keepalive: body.length < 60000, credentials: 'omit', headers: { 'Content-Type': 'text/plain' } })
        .then(function (r) {
          if (!r.ok) refused(r);
          done(r.status < 500 && r.status !== 429);
        }, function () { refused(); done(false); });
    } catch (e) {
      try { if (navigator.sendBeacon(url, body)) return done(true); } catch (x) {}
      done(false);
    }
  }

  function page(ctx) {
    var u = ctx.url.split('#')[0];
    if (blocked() || u === lastPage) return;
    lastPage = u;
    event('page_viewed', { referrer: referrer }, ctx);
  }
  function view(pid, ctx) {
    if (pid == null || pid === '' || blocked() || lastView === pid + ctx.url) return;
    lastView = pid + ctx.url;
    event('product_viewed', { product_id: pid }, ctx);
  }
  function autoEvents() {
    var ctx = here();
    page(ctx);
    view(ds.productId, ctx);
    landed(ctx);
  }
  function landed(ctx) {
    if (blocked()) return;
    var pid = ds.productId, r = land.pz_rec;
    if (land.pz_token) event('identify', { token: land.pz_token }, ctx);
    if (r && pid) { remember(String(pid), r); event('rec_clicked', { rec_id: r, product_id: pid, slot: 'email' }, ctx); }
    land = {};
  }
  function here() {
    return { url: location.href, title: d.title };
  }

  // ---- rendering ----
  var CSS = ':host{display:block}.pz-heading{font:inherit;font-weight:600;font-size:1.2em;margin:0 0 var(--pz-gap,16px)}' +
    '.pz-list{display:grid;grid-template-columns:repeat(auto-fill,minmax(var(--pz-item-width,160px),1fr));gap:var(--pz-gap,16px);list-style:none;margin:0;padding:0}' +
    'li{display:flex}.pz-item{flex:1;display:flex;flex-direction:column;gap:4px;color:var(--pz-color,inherit);text-decoration:none;font-family:var(--pz-font,inherit);' +
    'background:var(--pz-item-bg,transparent);border-radius:var(--pz-radius,8px);padding:var(--pz-item-padding,0)}' +
    '.pz-item:hover .pz-title,.pz-item:focus .pz-title{text-decoration:underline}.pz-item:focus-visible{outline:2px solid;outline-offset:2px}' +
    '.pz-image{width:100%;aspect-ratio:var(--pz-image-ratio,1);object-fit:cover;border-radius:var(--pz-radius,8px);background:var(--pz-image-bg,#f2f2f2)}' +
    '.pz-title{font-size:var(--pz-title-size,.95em);line-height:1.3}.pz-price{font-weight:600;color:var(--pz-price-color,inherit)}' +
    '.pz-reason{font-size:var(--pz-reason-size,.8em);color:var(--pz-reason-color,#666)}';

  // An http(s) URL, or '' (never the current page: an empty link or image is no link or image).
  function safeUrl(u) {
    try {
      var x = typeof u === 'string' && u.trim() && new URL(u, location.href);
      return x && /^https?:$/.test(x.protocol) ? x.href : '';
    } catch (e) { return ''; }
  }
  // Text from the API is shown as text, and never more than a tile can hold (a 1 MB title is cut).
  // Reasons and the list's name come in the page's language (the request's lang: data-lang on the
  // slot or script, else <html lang>); data-text='{"popular":"…","list":"…"}' on the script overrides any wording.
  function words() {
    var own = {};
    try { own = JSON.parse(ds.text) || {}; } catch (e) {}
    return own;
  }
  function say(w, code, args, text) {
    var t = w[code];
    return t ? t.replace(/\{(\w+)\}/g, function (m, k) { return (args || {})[k] || ''; }) : text;
  }
  function cut(t) {
    t = String(t);
    return t.length > 200 ? t.slice(0, 199) + '\u2026' : t;
  }
  function el(tag, cls, text) {
    var n = d.createElement(tag);
    n.className = 'pz-' + cls;
    n.setAttribute('part', cls);
    if (text != null && text !== '') n.textContent = cut(text);
    return n;
  }
  // The price in the item's currency (the product's, else the site's); without one, a plain number:
  // guessing a currency would show a wrong sign.
  function money(p, cur) {
    if (typeof p !== 'number' || !isFinite(p)) return '';
    try {
      return new Intl.NumberFormat(d.documentElement.lang || undefined, cur ? { style: 'currency', currency: cur } : { minimumFractionDigits: 2 }).format(p);
    } catch (e) { return (p.toFixed(2) + ' ' + (cur || '')).trim(); }
  }
  function styleShadow(root) {
    try {
      if (!sheet) { sheet = new CSSStyleSheet(); sheet.replaceSync(CSS); }
      root.adoptedStyleSheets = [sheet];
    } catch (e) {
      var st = d.createElement('style');
      if (NONCE) st.nonce = NONCE;
      st.textContent = CSS;
      root.appendChild(st);
    }
  }

  function renderAll() {
    d.querySelectorAll('[data-personalize-slot]').forEach(render);
  }
  function render(slot) {
    try {
      var name = slot.getAttribute('data-personalize-slot') || 'home', sd = slot.dataset, token = {};
      var q = { key: KEY, visitor: visitor(), slot: name, limit: sd.limit || '8' }, pid = sd.productId || sd.product || ds.productId;
      // The page's context: the product on screen, the cart's ids (data-cart), a strategy, or a
      // listing's ids (data-products) to re-order for the visitor (POST /api/v1/rank).
      if (pid) q.product = pid;
      if (sd.strategy) q.strategy = sd.strategy;
      var lang = sd.lang || ds.lang || d.documentElement.lang || '';
      if (/^[a-z]{2}/i.test(lang)) q.lang = lang.slice(0, 2);
      if (sd.cart != null) q.cart = ids(sd.cart, 50).join();
      gen.set(slot, token);
      var h = slot.offsetHeight;
      if (h && !parseFloat(getComputedStyle(slot).minHeight)) slot.style.minHeight = h + 'px';
      var ac = new AbortController(), t = setTimeout(function () { ac.abort(); }, 2000), o = { signal: ac.signal, credentials: 'omit' };
      if (sd.products != null) {
        o.method = 'POST';
        o.headers = { 'Content-Type': 'text/plain' };
        o.body = JSON.stringify({ key: KEY, visitor: q.visitor, products: ids(sd.products, 200), limit: parseInt(q.limit, 10) || 8 });
      }
      fetch(API + '/api/v1/' + (o.body ? 'rank' : 'recommendations?' + new URLSearchParams(q)), o)
        .then(function (r) { if (!r.ok) throw refused(r); return r.json(); }, function (e) { refused(); throw e; })
        .then(function (data) {
          clearTimeout(t);
          if (gen.get(slot) === token) draw(slot, name, data);
        })
        .catch(function () {});
    } catch (e) {}
  }
  function ids(s, n) {
    return s.split(',').map(function (x) { return x.trim(); }).filter(Boolean).slice(0, n);
  }
  function draw(slot, name, data) {
    var rec = typeof data.rec_id === 'string' ? data.rec_id : '', strategy = typeof data.strategy === 'string' ? data.strategy.slice(0, 32) : '', light = slot.dataset.render === 'light', title = slot.dataset.title;
    // Only well-formed items (string title and link, an id that fits the catalogue), at most the slot's limit.
    var items = (data && Array.isArray(data.items) ? data.items : []).filter(function (it) {
      return it && /^(string|number)$/.test(typeof it.id) && String(it.id).length <= 200 &&
        typeof it.title === 'string' && it.title && safeUrl(it.url);
    }).slice(0, parseInt(slot.dataset.limit, 10) || 8);
    if (!rec || !items.length) return;
    // A labelled list of links; each link is named by its title and price, the reason describes it.
    var box = d.createDocumentFragment(), list = el('ul', 'list');
    list.setAttribute('role', 'list'); // list-style:none would hide the list from some screen readers
    var w = words();
    list.setAttribute('aria-label', cut(title || w.list || data.label || 'Recommended for you'));
    if (title) box.appendChild(el('h2', 'heading', title));
    box.appendChild(list);
    items.forEach(function (it, i) {
      var li = d.createElement('li'), a = el('a', 'item'), pid = String(it.id), img = safeUrl(it.image), price = money(it.price, it.currency);
      a.setAttribute('data-personalize-item', pid);
      a.href = safeUrl(it.url);
      a.setAttribute('aria-label', cut(it.title) + (price ? ', ' + price : ''));
      if (img) {
        var im = el('img', 'image');
        im.src = img;
        im.alt = '';
        im.loading = 'lazy';
        im.decoding = 'async';
        a.appendChild(im);
      }
      a.appendChild(el('span', 'title', it.title));
      if (price) a.appendChild(el('span', 'price', price));
      var reason = typeof it.reason === 'string' ? say(w, it.reason_code, it.reason_args, it.reason) : '';
      if (reason) {
        var why = a.appendChild(el('span', 'reason', reason));
        why.id = 'pz-' + rid(12);
        a.setAttribute('aria-describedby', why.id);
      }
      a.addEventListener('click', function () {
        try {
          remember(pid, rec);
          event('rec_clicked', { rec_id: rec, product_id: pid, position: i + 1, slot: name, strategy: strategy }, here());
          flush();
        } catch (e) {}
      });
      li.appendChild(a);
      list.appendChild(li);
    });
    var root = slot;
    try {
      if (!light) root = slot.shadowRoot || slot.attachShadow({ mode: 'open' });
    } catch (e) { light = true; } // an element that cannot host a shadow root (ul, a, …)
    if (!light) {
      root.textContent = '';
      styleShadow(root);
    } else {
      slot.textContent = '';
      slot.classList.add('pz-slot');
    }
    root.appendChild(box);
    shown.set(slot, rec);
    impression(slot, { rec_id: rec, slot: name, strategy: strategy, items: items.map(function (it) { return String(it.id); }) });
    d.dispatchEvent(new CustomEvent('personalize:rendered', { detail: { slot: name, rec_id: rec, items: items, element: slot } }));
  }
  // One rec_impression per rec_id, once the slot is on screen.
  function impression(slot, props) {
    var ctx = here(), rec = props.rec_id;
    function go() {
      if (seen[rec] || shown.get(slot) !== rec) return;
      seen[rec] = 1;
      event('rec_impression', props, ctx);
    }
    if (!w.IntersectionObserver) return go();
    var io = new IntersectionObserver(function (es) {
      if (es.some(function (e) { return e.isIntersecting; })) { io.disconnect(); go(); }
    });
    io.observe(slot);
  }

  // ---- single-page apps ----
  function onRoute() {
    setTimeout(function () {
      try {
        var r = location.pathname + location.search;
        if (r === route) return;
        referrer = lastPage || referrer;
        route = r;
        page(here());
        renderAll();
      } catch (e) {}
    }, 0);
  }

  // ---- the public function ----
  function personalize(cmd, a, b) {
    try {
      var ctx = here();
      if (cmd === 'page') page(ctx);
      else if (cmd === 'view') view(a && a.product_id, ctx);
      else if (cmd === 'identify') event('identify', a, ctx);
      else if (cmd === 'track' && TYPES[a] != null && !/^rec_/.test(a)) event(a, b, ctx);
      else if (cmd === 'track') console.warn('personalize: unknown event type', a);
      else if (cmd === 'render') a ? render(a) : renderAll();
      else if (cmd === 'consent') {
        var was = !blocked();
        consent = a !== false;
        if (!consent) forget();
        else if (!was && started) autoEvents();
      } else if (cmd === 'optout') {
        if (a === false) store(OPT, null);
        else { forget(); store(OPT, '1'); }
      }
    } catch (e) {}
  }
  personalize.loaded = true;
  var started = false;
  w.personalize = personalize;

  try {
    // Replay calls made before the script loaded: privacy choices first, so they govern the rest.
    var calls = [].slice.call((prev && prev.q) || []), early = function (c) { return c[0] === 'consent' || c[0] === 'optout'; };
    calls.filter(early).forEach(function (c) { personalize.apply(null, c); });
    started = true;
    page(here());
    calls.filter(function (c) { return !early(c); }).forEach(function (c) { personalize.apply(null, c); });
    view(ds.productId, here());
    landed(here());
    var push = history.pushState;
    history.pushState = function () {
      var r = push.apply(this, arguments);
      onRoute();
      return r;
    };
    w.addEventListener('popstate', onRoute);
    w.addEventListener('pagehide', flush);
    d.addEventListener('visibilitychange', function () { if (d.visibilityState === 'hidden') flush(); });
    if (d.readyState === 'loading') d.addEventListener('DOMContentLoaded', renderAll);
    else renderAll();
    // data-capture="ga4" / "segment": the shop's data layer becomes our events. That code lives in
    // capture.js beside this file, loaded only when asked for; if it fails to load, nothing else changes.
    if (ds.capture) {
      var cs = d.createElement('script');
      cs.src = new URL('capture.js', me.src).href;
      cs.async = true;
      cs.setAttribute('data-capture', ds.capture);
      if (NONCE) cs.nonce = NONCE;
      d.head.appendChild(cs);
    }
  } catch (e) {}
})(window, document);
