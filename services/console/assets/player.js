// The replay player page: fetches the session's events (the console's API, same origin,
// the log-in cookie) and plays them with rrweb-player, the session's form events marked on
// its timeline. The recorded page plays in rrweb's frame without scripts.
(function () {
  "use strict";
  var el = document.getElementById("player");
  if (!el || typeof rrwebPlayer === "undefined") return;
  // The UMD build's global is the module: the player is its default export.
  var Player = rrwebPlayer.default || rrwebPlayer;
  var tags = {};
  document.querySelectorAll(".marks li").forEach(function (li) {
    tags[li.textContent] = getComputedStyle(li).color;
  });
  fetch(el.getAttribute("data-events"), { credentials: "same-origin" })
    .then(function (r) {
      if (!r.ok) return r.json().then(function (b) { throw new Error(b.error || "HTTP " + r.status); });
      return r.json();
    })
    .then(function (events) {
      el.textContent = "";
      new Player({
        target: el,
        props: {
          events: events,
          width: Math.min(el.clientWidth || 1024, 1200),
          height: 640,
          autoPlay: false,
          showController: true,
          tags: tags
        }
      });
      el.setAttribute("data-ready", String(events.length));
    })
    .catch(function (e) {
      el.textContent = "The replay could not be played: " + e.message;
    });
})();
