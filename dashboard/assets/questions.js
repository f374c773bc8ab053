/* organizer dashboard: batch questions (Suggestions page). A face of the question is
   ticked until clicked (or Space pressed on it); the unticked faces travel in the
   question's store, so Accept (A, see organizer.js) confirms exactly the ticked ones.
   Loaded after organizer.js (assets load in name order). */
(function () {
  "use strict";

  function typing(t) {
    return !!t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
  }

  // Space (or Enter) on a focused face toggles it; Space with no face focused focuses the
  // first one, so a question can be answered from the keyboard alone (Tab moves on).
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) { return; }
    if (e.key !== " " && e.key !== "Spacebar" && e.key !== "Enter") { return; }
    var tile = e.target && e.target.closest ? e.target.closest(".batch-face") : null;
    if (tile) {
      tile.click();
      e.preventDefault();
      return;
    }
    if (e.key !== "Enter") {
      var first = document.querySelector(".batch-face");
      if (first) { first.focus(); e.preventDefault(); }
    }
  });

  function tickline(n, total, name) {
    if (n === total) { return "All " + total + " ticked: untick the faces that are not " + name + ", then Accept."; }
    if (n === 0) { return "None ticked: Accept now says none of them is " + name + "."; }
    return n + " of " + total + " ticked: the other " + (total - n) + " will be remembered as not " + name + ".";
  }

  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    questions: {
      /* A click on a face of the question. Returns [tile classNames, aria-checked values,
         the question store with left_out updated, the tick line]. */
      toggle: function (clicks, ids, current) {
        var dc = window.dash_clientside;
        var cc = dc.callback_context;
        var trig = cc.triggered_id;
        var value = cc.triggered && cc.triggered.length ? cc.triggered[0].value : null;
        if (!trig || typeof trig !== "object" || !value || !current) {
          return [dc.no_update, dc.no_update, dc.no_update, dc.no_update];
        }
        var out = new Set(current.left_out || []);
        if (out.has(trig.index)) { out.delete(trig.index); } else { out.add(trig.index); }
        var order = (ids || []).map(function (i) { return i.index; });
        var left = order.filter(function (i) { return out.has(i); });
        var next = Object.assign({}, current, {left_out: left});
        return [
          order.map(function (i) { return out.has(i) ? "face-tile batch-face unticked" : "face-tile batch-face ticked"; }),
          order.map(function (i) { return out.has(i) ? "false" : "true"; }),
          next,
          tickline(order.length - left.length, order.length, current.person_name || "them")
        ];
      }
    }
  });
})();
