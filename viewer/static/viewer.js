// ccbridge viewer: keep what the reader opened while the live transcript refreshes, and open the way to a
// linked turn (a search hit may sit inside a collapsed subagent run). No inline code anywhere (CSP).
(function () {
  "use strict";
  var openIds = [];

  function keyOf(details) {
    // the id of the nearest identified element, plus the position among its details
    var owner = details.closest("[id]");
    if (!owner) return null;
    var all = owner.querySelectorAll("details");
    return owner.id + "#" + Array.prototype.indexOf.call(all, details);
  }

  function revealTarget() {
    var id = decodeURIComponent(window.location.hash.slice(1));
    if (!id) return;
    var target = document.getElementById(id);
    if (!target) return;
    for (var node = target.parentElement; node; node = node.parentElement) {
      if (node.tagName === "DETAILS") node.open = true;
    }
    target.classList.add("hit");
    target.scrollIntoView({ block: "start" });
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    if (!event.detail.target || event.detail.target.id !== "transcript") return;
    openIds = [];
    event.detail.target.querySelectorAll("details[open]").forEach(function (d) {
      var key = keyOf(d);
      if (key) openIds.push(key);
    });
  });

  document.addEventListener("htmx:afterSettle", function () {
    var transcript = document.getElementById("transcript");
    if (!transcript || !openIds.length) return;
    transcript.querySelectorAll("details").forEach(function (d) {
      if (openIds.indexOf(keyOf(d)) >= 0) d.open = true;
    });
  });

  window.addEventListener("hashchange", revealTarget);
  document.addEventListener("DOMContentLoaded", revealTarget);
})();
