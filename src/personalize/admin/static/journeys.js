/* personalize admin, journeys: show the fields that apply to what is chosen. Every form works without it. */
(function () {
  'use strict';

  // <div data-when="trigger_type=event|date">: shown when the form's control named trigger_type has one of the values
  function update(form) {
    form.querySelectorAll('[data-when]').forEach(function (el) {
      var rule = el.getAttribute('data-when').split('='), control = form.elements[rule[0]];
      if (!control) return;
      el.hidden = rule[1].split('|').indexOf(control.value) < 0;
    });
    // a connector step shows the fields of the chosen action only
    var select = form.querySelector('[data-action-select]');
    if (select) {
      form.querySelectorAll('fieldset[data-action]').forEach(function (fs) {
        fs.hidden = fs.getAttribute('data-action') !== select.value;
      });
    }
  }

  document.querySelectorAll('form').forEach(function (form) {
    if (!form.querySelector('[data-when], [data-action-select]')) return;
    form.addEventListener('change', function () { update(form); });
    update(form);
  });

  // spare rule rows stay folded until the row above is used
  document.querySelectorAll('table.builder').forEach(function (table) {
    var rows = table.querySelectorAll('tr.spare');
    if (!rows.length) return;
    rows.forEach(function (row) { row.hidden = true; });
    var more = document.createElement('button');
    more.type = 'button';
    more.className = 'secondary more-rows';
    more.textContent = 'More conditions';
    more.addEventListener('click', function () {
      var next = table.querySelector('tr.spare[hidden]');
      if (next) next.hidden = false;
      if (!table.querySelector('tr.spare[hidden]')) more.remove();
    });
    table.parentNode.insertBefore(more, table.nextSibling);
  });

  // rule boxes: the JSON text area only when "Rule as JSON" is chosen
  document.querySelectorAll('fieldset.rule').forEach(function (fs) {
    var area = fs.querySelector('textarea'), table = fs.querySelector('table.builder');
    function sync() {
      var json = fs.querySelector('input[type=radio][value=json]').checked;
      area.hidden = !json;
      if (table) table.hidden = json;
    }
    fs.addEventListener('change', sync);
    sync();
  });
})();
