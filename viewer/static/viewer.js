// ccbridge viewer: keep what the reader opened while the live transcript refreshes, open the way to a linked
// turn (a search hit may sit inside a collapsed subagent run), and copy buttons. No inline code anywhere (CSP).
(function () {
  "use strict";
  var openIds = [];
  // what a copy button copies: the element it sits in
  var COPYABLE = ".message.user, .message.assistant, .tool-call > pre, .tool-result, .task-note";

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
    for (var node = target; node; node = node.parentElement) {
      if (node.tagName === "DETAILS") node.open = true;
    }
    var turn = target.closest(".turn") || target;
    turn.classList.add("hit");
    turn.scrollIntoView({ block: "start" });
  }

  function copyText(element) {
    var clone = element.cloneNode(true);
    clone.querySelectorAll("button.copy").forEach(function (b) { b.remove(); });
    return (clone.innerText || clone.textContent || "").trim();
  }

  function addCopyButtons(root) {
    // only where the reader can see it: a collapsed part gets its buttons when it is opened
    root.querySelectorAll(COPYABLE).forEach(function (element) {
      if (element.querySelector(":scope > button.copy") || element.closest("details:not([open])")) return;
      var button = document.createElement("button");
      button.type = "button";
      button.className = "copy";
      button.textContent = "copy";
      button.title = "copy to the clipboard";
      element.insertBefore(button, element.firstChild);
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button.copy");
    if (!button || !navigator.clipboard) return;
    navigator.clipboard.writeText(copyText(button.parentElement)).then(function () {
      button.textContent = "copied";
      window.setTimeout(function () { button.textContent = "copy"; }, 1500);
    });
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    if (!event.detail.target || event.detail.target.id !== "live") return;
    var transcript = document.getElementById("transcript");
    openIds = [];
    if (!transcript) return;
    transcript.querySelectorAll("details[open]").forEach(function (d) {
      var key = keyOf(d);
      if (key) openIds.push(key);
    });
  });

  document.addEventListener("htmx:afterSettle", function () {
    var transcript = document.getElementById("transcript");
    if (!transcript) return;
    if (openIds.length) {
      transcript.querySelectorAll("details").forEach(function (d) {
        if (openIds.indexOf(keyOf(d)) >= 0) d.open = true;
      });
    }
    addCopyButtons(transcript);
  });

  document.addEventListener("toggle", function (event) {
    if (event.target.tagName === "DETAILS" && event.target.open) addCopyButtons(event.target);
  }, true);

  window.addEventListener("hashchange", revealTarget);
  document.addEventListener("DOMContentLoaded", function () {
    addCopyButtons(document);
    revealTarget();
  });
})();
