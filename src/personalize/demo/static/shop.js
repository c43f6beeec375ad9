/* Hearth & Trail, the personalize demo shop: cart, checkout, sign-in and "switch visitor".
 * Everything is wired with addEventListener (no inline handlers), so the pages work under a strict CSP.
 * This file loads before widget.js: it defines the queue stub that the widget replays. */
(function (w, d) {
  'use strict';
  w.personalize = w.personalize || function () { (w.personalize.q = w.personalize.q || []).push(arguments); };

  var CART = 'pz_demo_cart', EMAIL = 'pz_demo_email';
  function get(k) { try { return localStorage.getItem(k); } catch (e) { return null; } }
  function put(k, v) {
    try { if (v == null) localStorage.removeItem(k); else localStorage.setItem(k, v); } catch (e) {}
  }

  // /?reset=1 forgets this browser's visitor id (before the widget reads it) so a tester starts as someone new.
  if (/(^|[?&])reset=1(&|$)/.test(location.search.slice(1))) {
    ['pz_vid', 'pz_outbox', 'pz_recs', CART, EMAIL].forEach(function (k) { put(k, null); });
    history.replaceState(null, '', location.pathname);
  }

  function money(value, currency) {
    try { return new Intl.NumberFormat('en', { style: 'currency', currency: currency || 'EUR' }).format(value); }
    catch (e) { return value.toFixed(2) + ' ' + (currency || ''); }
  }
  function readCart() {
    try {
      var lines = JSON.parse(get(CART) || '[]');
      return Array.isArray(lines) ? lines.filter(function (l) { return l && l.product_id && l.quantity > 0; }) : [];
    } catch (e) { return []; }
  }
  function saveCart(lines) {
    put(CART, lines.length ? JSON.stringify(lines) : null);
    showCount(lines);
  }
  function showCount(lines) {
    var n = lines.reduce(function (s, l) { return s + l.quantity; }, 0);
    d.querySelectorAll('[data-cart-count]').forEach(function (el) { el.textContent = String(n); });
  }

  function addToCart(button) {
    var b = button.dataset, price = parseFloat(b.price), lines = readCart();
    var line = lines.filter(function (l) { return l.product_id === b.productId; })[0];
    if (line) line.quantity += 1;
    else {
      lines.push({ product_id: b.productId, title: b.title, price: price, currency: b.currency || 'EUR',
                   url: b.url, image: b.image, quantity: 1 });
    }
    saveCart(lines);
    w.personalize('track', 'product_added', { product_id: b.productId, quantity: 1, price: price });
    var notice = d.querySelector('[data-cart-notice]');
    if (notice) notice.hidden = false;
  }

  function drawCart(root) {
    var lines = readCart(), list = root.querySelector('[data-cart-lines]');
    list.textContent = '';
    root.querySelector('[data-cart-empty]').hidden = lines.length > 0;
    root.querySelector('[data-cart-summary]').hidden = lines.length === 0;
    var total = 0;
    lines.forEach(function (l) {
      total += l.price * l.quantity;
      var li = d.createElement('li'), img = d.createElement('img'), name = d.createElement('a');
      var qty = d.createElement('span'), sum = d.createElement('span'), remove = d.createElement('button');
      li.className = 'cart-line';
      img.src = l.image || '';
      img.alt = '';
      img.width = img.height = 64;
      name.href = l.url || '#';
      name.textContent = l.title || l.product_id;
      qty.className = 'muted';
      qty.textContent = l.quantity + ' × ' + money(l.price, l.currency);
      sum.className = 'cart-line-sum';
      sum.textContent = money(l.price * l.quantity, l.currency);
      remove.type = 'button';
      remove.className = 'link-button';
      remove.textContent = 'Remove';
      remove.addEventListener('click', function () {
        saveCart(readCart().filter(function (x) { return x.product_id !== l.product_id; }));
        drawCart(root);
      });
      [img, name, qty, sum, remove].forEach(function (el) { li.appendChild(el); });
      list.appendChild(li);
    });
    root.querySelector('[data-cart-total]').textContent = money(total, 'EUR');
  }

  function checkout(root) {
    var lines = readCart();
    if (!lines.length) return;
    var orderId = 'HT-' + Date.now().toString(36).toUpperCase() + '-' + Math.floor(Math.random() * 1e6).toString(36).toUpperCase();
    var items = lines.map(function (l) { return { product_id: l.product_id, quantity: l.quantity, price: l.price }; });
    var revenue = Math.round(lines.reduce(function (s, l) { return s + l.price * l.quantity; }, 0) * 100) / 100;
    w.personalize('track', 'order_completed', { order_id: orderId, items: items, revenue: revenue, currency: 'EUR' });
    saveCart([]);
    drawCart(root);
    root.querySelector('[data-order-id]').textContent = orderId;
    root.querySelector('[data-order-done]').hidden = false;
  }

  function showSignedIn() {
    var email = get(EMAIL);
    if (!email) return;
    d.querySelectorAll('[data-shop-account]').forEach(function (a) { a.textContent = email; });
    var done = d.querySelector('[data-signin-done]');
    if (done) {
      done.querySelector('[data-signin-email]').textContent = email;
      done.hidden = false;
    }
  }

  function showVisitor() {
    var vid = get('pz_vid');
    d.querySelectorAll('[data-visitor-id]').forEach(function (el) { el.textContent = vid ? vid.slice(0, 8) : 'new'; });
  }

  d.addEventListener('DOMContentLoaded', function () {
    showCount(readCart());
    showSignedIn();
    d.querySelectorAll('[data-add-to-cart]').forEach(function (button) {
      button.addEventListener('click', function () { addToCart(button); });
    });
    var cart = d.querySelector('[data-cart]');
    if (cart) {
      drawCart(cart);
      cart.querySelector('[data-checkout]').addEventListener('click', function () { checkout(cart); });
    }
    var form = d.querySelector('[data-signin]');
    if (form) {
      form.addEventListener('submit', function (e) {
        e.preventDefault();
        var email = form.elements.email.value.trim().toLowerCase();
        if (!email || !form.checkValidity()) return;
        w.personalize('identify', { email: email });
        put(EMAIL, email);
        showSignedIn();
      });
    }
  });
  // The widget creates the visitor id when it runs; show it once the page has settled.
  w.addEventListener('load', function () { setTimeout(showVisitor, 50); });
})(window, document);
