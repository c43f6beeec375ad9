/* personalize admin: the product picker and the rule form's show/hide. Without this file the
   forms still work: ids are typed one per line in the text boxes. */
(function () {
  'use strict';

  var counter = 0;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text) node.textContent = text;
    return node;
  }

  function thumb(p) {
    if (p.image) {
      var img = el('img', { src: p.image, alt: '', width: '40', height: '40', loading: 'lazy' });
      img.className = 'thumb';
      return img;
    }
    var box = el('span', { 'aria-hidden': 'true' }, (p.title || p.id).charAt(0).toUpperCase());
    box.className = 'thumb thumb-empty';
    return box;
  }

  function describe(p) {
    var parts = [p.id];
    if (p.category) parts.push(p.category);
    if (p.price !== null && p.price !== undefined) parts.push(p.price + (p.currency ? ' ' + p.currency : ''));
    if (!p.in_stock) parts.push('out of stock');
    return parts.join(' · ');
  }

  function getJSON(url) {
    return fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (r) { return r.ok ? r.json() : { products: [] }; })
      .catch(function () { return { products: [] }; });
  }

  function ids(text) {
    return text.split(/[\s,]+/).filter(function (t) { return t; });
  }

  // <textarea data-picker="list" data-picker-url="…">: chosen products as cards with a remove
  // button; <textarea data-picker="insert">: a search that adds the chosen id as a new line.
  function picker(area) {
    var n = ++counter, mode = area.getAttribute('data-picker'), url = area.getAttribute('data-picker-url');
    var suffix = area.getAttribute('data-picker-suffix') || '';
    var label = document.querySelector('label[for="' + area.id + '"]');
    var wrap = el('div', { 'class': 'picker' });
    var chosen = el('ul', { 'class': 'picked', 'aria-label': 'Chosen products', id: 'picked-' + n });
    var input = el('input', {
      type: 'text', role: 'combobox', 'aria-expanded': 'false', 'aria-autocomplete': 'list', autocomplete: 'off',
      'aria-controls': 'picker-list-' + n, id: 'picker-input-' + n, placeholder: 'Search products by name or id',
    });
    var list = el('ul', { role: 'listbox', id: 'picker-list-' + n, 'class': 'picker-list', hidden: '' });
    var status = el('p', { 'class': 'muted picker-status', 'aria-live': 'polite' });
    var results = [], active = -1, timer = null, asked = 0;
    if (label) {
      input.setAttribute('aria-label', 'Search products to add: ' + label.textContent);
    }
    if (mode === 'list') {
      wrap.appendChild(chosen);
      area.hidden = true;
      if (label) label.setAttribute('for', input.id);
    }
    wrap.appendChild(input);
    wrap.appendChild(list);
    wrap.appendChild(status);
    area.parentNode.insertBefore(wrap, area.nextSibling);

    function render(products) {
      chosen.textContent = '';
      products.forEach(function (p) {
        var li = el('li', { 'data-product': p.id });
        var text = el('span', { 'class': 'picked-text' });
        text.appendChild(el('strong', {}, p.title || p.id));
        text.appendChild(el('span', { 'class': 'muted' }, ' ' + describe(p)));
        var remove = el('button', { type: 'button', 'class': 'secondary remove', 'aria-label': 'Remove ' + (p.title || p.id) }, '×');
        remove.addEventListener('click', function () {
          area.value = ids(area.value).filter(function (id) { return id !== p.id; }).join('\n');
          refresh();
          input.focus();
        });
        li.appendChild(thumb(p));
        li.appendChild(text);
        li.appendChild(remove);
        chosen.appendChild(li);
      });
    }

    function refresh() {
      if (mode !== 'list') return;
      var wanted = ids(area.value);
      if (!wanted.length) { render([]); return; }
      getJSON(url + '?ids=' + encodeURIComponent(wanted.join(','))).then(function (data) {
        var found = {};
        data.products.forEach(function (p) { found[p.id] = p; });
        render(wanted.map(function (id) { return found[id] || { id: id, title: id + ' (not in the catalogue)', in_stock: true }; }));
      });
    }

    function close() {
      list.hidden = true;
      input.setAttribute('aria-expanded', 'false');
      input.removeAttribute('aria-activedescendant');
      active = -1;
    }

    function highlight(i) {
      var options = list.querySelectorAll('[role=option]');
      if (!options.length) return;
      active = (i + options.length) % options.length;
      options.forEach(function (o, j) { o.setAttribute('aria-selected', j === active ? 'true' : 'false'); });
      input.setAttribute('aria-activedescendant', options[active].id);
      options[active].scrollIntoView({ block: 'nearest' });
    }

    function choose(p) {
      if (mode === 'list') {
        var current = ids(area.value);
        if (current.indexOf(p.id) < 0) current.push(p.id);
        area.value = current.join('\n');
        refresh();
      } else {
        var text = area.value.replace(/\s+$/, '');
        area.value = (text ? text + '\n' : '') + p.id + suffix;
      }
      status.textContent = 'Added ' + (p.title || p.id) + '.';
      input.value = '';
      close();
      input.focus();
    }

    function search() {
      var q = input.value.trim(), mine = ++asked;
      if (!q) { close(); return; }
      getJSON(url + '?q=' + encodeURIComponent(q)).then(function (data) {
        if (mine !== asked) return;  // an older answer
        results = data.products;
        list.textContent = '';
        results.forEach(function (p, i) {
          var li = el('li', { role: 'option', id: 'picker-' + n + '-' + i, 'aria-selected': 'false', 'data-product': p.id });
          var text = el('span', { 'class': 'picked-text' });
          text.appendChild(el('strong', {}, p.title || p.id));
          text.appendChild(el('span', { 'class': 'muted' }, ' ' + describe(p)));
          li.appendChild(thumb(p));
          li.appendChild(text);
          li.addEventListener('mousedown', function (e) { e.preventDefault(); choose(p); });
          list.appendChild(li);
        });
        status.textContent = results.length ? results.length + ' found; arrow keys to move, Enter to add.' : 'No product matches ' + q + '.';
        list.hidden = !results.length;
        input.setAttribute('aria-expanded', results.length ? 'true' : 'false');
        if (results.length) highlight(0);
      });
    }

    input.addEventListener('input', function () {
      clearTimeout(timer);
      timer = setTimeout(search, 150);
    });
    input.addEventListener('keydown', function (e) {
      if (e.key === 'ArrowDown') { e.preventDefault(); if (list.hidden) search(); else highlight(active + 1); }
      else if (e.key === 'ArrowUp') { e.preventDefault(); highlight(active - 1); }
      else if (e.key === 'Enter') {
        if (!list.hidden && active >= 0 && results[active]) { e.preventDefault(); choose(results[active]); }
        else if (input.value.trim()) e.preventDefault();  // Enter in the search never submits the form
      } else if (e.key === 'Escape') { close(); }
    });
    input.addEventListener('blur', function () { setTimeout(close, 150); });
    refresh();
  }

  document.querySelectorAll('textarea[data-picker]').forEach(picker);

  // The rule form: show the fields that matter for the action, the attribute and the condition.
  var form = document.getElementById('rule-form');
  if (!form) return;
  var action = form.querySelector('#rule-action'), when = form.querySelector('#when-did');
  function sync() {
    form.querySelectorAll('[data-for-action]').forEach(function (box) {
      box.hidden = box.getAttribute('data-for-action') !== action.value;
    });
    form.querySelectorAll('[data-when-condition]').forEach(function (box) { box.hidden = !when.value; });
    form.querySelectorAll('[data-selector]').forEach(function (row) {
      var field = row.querySelector('[data-field-select]').value;
      var isId = field === 'id';
      row.querySelector('[data-when-field="not-id"]').hidden = isId;
      row.nextElementSibling.hidden = !isId;  // the chosen products
      var value = row.querySelector('[data-value-input]');
      value.setAttribute('list', 'values-' + field);
      var op = row.querySelector('select[name$="op"]');
      var numeric = field === 'price', text = field === 'category' || isId;
      Array.prototype.forEach.call(op.options, function (o) {
        var isText = o.value === 'is' || o.value === 'is_not';
        o.disabled = (numeric && isText) || (text && !isText) || (isId && o.value !== 'is');
      });
      if (op.selectedOptions[0] && op.selectedOptions[0].disabled) {
        var first = Array.prototype.find.call(op.options, function (o) { return !o.disabled; });
        if (first) op.value = first.value;
      }
    });
  }
  form.addEventListener('change', sync);
  sync();
  var invalid = form.querySelector('[aria-invalid=true]');
  if (invalid) {
    invalid.focus();
    window.addEventListener('load', function () { if (document.activeElement === document.body) invalid.focus(); });
  }
})();
