// Pages that refresh themselves (dashboards, an announcement's progress): the content is
// fetched again every few seconds and replaced in place, with a button to pause. Without
// JavaScript, the page offers "refresh now" and an opt-in automatic refresh instead.
(function () {
  "use strict";
  // Signing out forgets the door's kept list (names and tickets) on this device.
  Array.prototype.forEach.call(document.querySelectorAll('form[action="/sign-out"]'), function (f) {
    f.addEventListener("submit", function () {
      try {
        Object.keys(localStorage).filter(function (k) { return k.indexOf("mk.door.list.") === 0; })
          .forEach(function (k) { localStorage.removeItem(k); });
      } catch (e) { /* storage unavailable */ }
    });
  });
  var box = document.querySelector("[data-refresh]");
  if (!box) return;
  var seconds = parseInt(box.dataset.refresh, 10) || 15, paused = false, button = box.querySelector("button");
  Array.prototype.forEach.call(box.querySelectorAll(".no-js-only"), function (a) { a.hidden = true; });
  button.hidden = false;
  button.addEventListener("click", function () {
    paused = !paused;
    button.textContent = paused ? box.dataset.resume : box.dataset.pause;
    if (!paused) schedule();
  });
  function schedule() { setTimeout(refresh, seconds * 1000); }
  async function refresh() {
    if (paused) return;
    try {
      var res = await fetch(location.href, {credentials: "same-origin", headers: {"Accept": "text/html"}});
      if (res.ok) {
        var doc = new DOMParser().parseFromString(await res.text(), "text/html");
        var fresh = doc.getElementById("content");
        if (fresh) document.getElementById("content").replaceWith(fresh);
        if (!doc.querySelector("[data-refresh]")) { box.hidden = true; return; }  // finished
      }
    } catch (e) { /* offline for a moment: try again later */ }
    schedule();
  }
  schedule();
})();
