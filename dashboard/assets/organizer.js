/* organizer dashboard: face selection (click, shift-click ranges), keyboard shortcuts,
   toast dismissal. Everything that changes the library goes through Dash callbacks. */
(function () {
  "use strict";

  // Dash callbacks do not see modifier keys, so remember whether the last click had Shift
  // (capture phase: runs before React's handlers).
  document.addEventListener("click", function (e) {
    window.__organizerShift = !!e.shiftKey;
    var close = e.target.closest && e.target.closest(".toast-close");
    if (close) {
      var t = close.closest(".toast");
      if (t) { t.classList.add("dismissed"); }
    }
  }, true);

  function press(id, e) {
    var el = document.getElementById(id);
    if (!el || el.disabled) { return false; }
    el.click();
    if (e) { e.preventDefault(); }
    return true;
  }

  document.addEventListener("keydown", function (e) {
    var t = e.target;
    var typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
    if (e.ctrlKey || e.metaKey || e.altKey) {
      if ((e.ctrlKey || e.metaKey) && !e.shiftKey && (e.key === "z" || e.key === "Z") && !typing) {
        press("app-undo", e);
      }
      return;
    }
    if (typing) {
      if (e.key === "Escape") { t.blur(); }
      return;
    }
    var k = (e.key || "").toLowerCase();
    if (document.getElementById("suggestions-accept")) {
      if (k === "a" || k === "y") { press("suggestions-accept", e); return; }
      if (k === "r" || k === "n") { press("suggestions-reject", e); return; }
      if (k === "s" || k === "arrowright") { press("suggestions-skip", e); return; }
    }
    if (k === "u") { press("app-undo", e); return; }
    if (k === "escape") {
      var clear = document.querySelector("[id$='-sel-clear']");
      if (clear) { clear.click(); e.preventDefault(); }
    }
  });

  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    organizer: {
      /* Selection of a face grid. State: {selected: [face ids], anchor: last clicked id}.
         Returns [tile classNames, state, count text, selection bar className]. */
      select: function (clicks, allClicks, clearClicks, ids, state) {
        var cc = window.dash_clientside.callback_context;
        var order = (ids || []).map(function (i) { return i.index; });
        var sel = new Set((state && state.selected) || []);
        var anchor = state ? state.anchor : null;
        var trig = cc.triggered_id;
        var value = cc.triggered && cc.triggered.length ? cc.triggered[0].value : null;
        if (trig && typeof trig === "object" && value) {
          var id = trig.index;
          var a = anchor === null || anchor === undefined ? -1 : order.indexOf(anchor);
          var b = order.indexOf(id);
          if (window.__organizerShift && a >= 0 && b >= 0) {
            var lo = Math.min(a, b), hi = Math.max(a, b);
            for (var k = lo; k <= hi; k++) { sel.add(order[k]); }
          } else if (sel.has(id)) {
            sel.delete(id);
          } else {
            sel.add(id);
          }
          anchor = id;
        } else if (typeof trig === "string" && /-sel-all$/.test(trig) && value) {
          order.forEach(function (i) { sel.add(i); });
        } else if (typeof trig === "string" && /-sel-clear$/.test(trig) && value) {
          sel.clear();
          anchor = null;
        }
        var selected = order.filter(function (i) { return sel.has(i); });
        var classes = order.map(function (i) { return sel.has(i) ? "face-tile selected" : "face-tile"; });
        var n = selected.length;
        return [
          classes,
          {selected: selected, anchor: anchor},
          n ? (n === 1 ? "1 face selected" : n + " faces selected") : "Nothing selected",
          n ? "selbar active" : "selbar"
        ];
      }
    }
  });
})();
