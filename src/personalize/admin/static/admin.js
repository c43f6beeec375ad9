/* personalize admin: small progressive enhancements. Every page works without this file. */
(function () {
  'use strict';

  function csrf() {
    var input = document.querySelector('input[name="csrf_token"]');
    return input ? input.value : '';
  }

  // Narrow screens show a table's rows as blocks: each cell carries its column's name (admin.css).
  document.querySelectorAll('table').forEach(function (table) {
    var heads = table.querySelectorAll('thead th');
    if (heads.length < 3) return;
    table.querySelectorAll('tbody tr').forEach(function (row) {
      var col = 0;
      Array.prototype.forEach.call(row.children, function (cell) {
        var head = heads[col];
        if (head && head.textContent.trim() && !cell.hasAttribute('data-label')) cell.setAttribute('data-label', head.textContent.trim());
        col += cell.colSpan || 1;
      });
    });
  });

  // The segment builder: a value box suggests the shop's values for the field chosen next to it.
  document.querySelectorAll('input[data-values-for]').forEach(function (field) {
    var value = document.getElementById(field.getAttribute('data-values-for'));
    var suggest = function () {
      var list = document.getElementById('values-' + field.value.trim().replace(/\./g, '-'));
      if (list) value.setAttribute('list', list.id); else value.removeAttribute('list');
    };
    field.addEventListener('input', suggest);
    field.addEventListener('change', suggest);
    suggest();
  });

  // Copy buttons: <button data-copy="#element-id">
  document.querySelectorAll('[data-copy]').forEach(function (button) {
    button.addEventListener('click', function () {
      var source = document.querySelector(button.getAttribute('data-copy'));
      var status = button.parentNode.querySelector('.copy-status');
      if (!source) return;
      var text = source.textContent;
      function done(ok) {
        var label = button.getAttribute('data-label') || button.textContent;
        button.setAttribute('data-label', label);
        button.textContent = ok ? 'Copied' : 'Select and copy by hand';
        if (status) status.textContent = ok ? 'Copied to the clipboard.' : '';
        setTimeout(function () { button.textContent = label; }, 2000);
      }
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(function () { done(true); }, function () { done(fallback(source)); });
      } else {
        done(fallback(source));
      }
    });
  });

  function fallback(source) {
    var range = document.createRange();
    range.selectNodeContents(source);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    try { return document.execCommand('copy'); } catch (e) { return false; }
  }

  // Live check on a site's page: poll the newest event.
  var live = document.getElementById('live');
  if (live) {
    var summary = document.getElementById('live-summary');
    var state = live.querySelector('.live-state');
    var poll = function () {
      fetch(live.getAttribute('data-live-url'), { credentials: 'same-origin', headers: { Accept: 'application/json' } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) return;
          if (data.last_event_at) {
            summary.textContent = 'Last event (' + (data.last_event_label || data.last_event_type).toLowerCase() + ') ' + age(data.seconds_ago) + '; ' +
              data.events_last_hour + ' in the last hour.';
            state.className = 'live-state ' + (data.seconds_ago < 3600 ? 'ok' : 'waiting');
          }
          showRefused(data.refused || []);
        })
        .catch(function () {});
    };
    setInterval(poll, 2500);
  }

  // Refused requests: "12 requests from https://other.example refused: origin not allowed (last 5 s ago)".
  function showRefused(rows) {
    var box = document.getElementById('refused'), list = document.getElementById('refused-list');
    if (!box || !list) return;
    list.textContent = '';
    rows.forEach(function (r) {
      var li = document.createElement('li'), strong = document.createElement('strong'), code = document.createElement('code');
      var when = document.createElement('span');
      strong.textContent = r.count + (r.count === 1 ? ' request' : ' requests');
      code.textContent = r.origin;
      when.className = 'muted';
      when.textContent = ' (last ' + age(r.seconds_ago) + ')';
      li.appendChild(strong);
      li.appendChild(document.createTextNode(' from '));
      li.appendChild(code);
      li.appendChild(document.createTextNode(' refused: ' + r.meaning));
      li.appendChild(when);
      list.appendChild(li);
    });
    box.hidden = !rows.length;
  }

  function age(seconds) {
    if (seconds < 60) return Math.max(seconds, 0) + ' s ago';
    if (seconds < 3600) return Math.floor(seconds / 60) + ' min ago';
    if (seconds < 86400) return Math.floor(seconds / 3600) + ' h ago';
    return Math.floor(seconds / 86400) + ' days ago';
  }

  // Live counts: <form data-count-url="…"> posts itself (debounced) and shows the answer in [data-count].
  document.querySelectorAll('form[data-count-url]').forEach(function (form) {
    var out = form.querySelector('[data-count]');
    var timer = null;
    var update = function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        fetch(form.getAttribute('data-count-url'), {
          method: 'POST', credentials: 'same-origin', body: new FormData(form),
          headers: { 'X-CSRF-Token': csrf(), Accept: 'application/json' }
        }).then(function (r) { return r.json(); }).then(function (data) {
          if (data.empty) { out.textContent = data.message; out.className = 'muted'; return; }
          out.textContent = data.error ? data.error : data.count + ' ' + (data.count === 1 ? 'profile matches' : 'profiles match');
          out.className = data.error ? 'error' : 'count';
        }).catch(function () {});
      }, 300);
    };
    form.addEventListener('input', update);
    form.addEventListener('change', update);
    update();
  });
})();
