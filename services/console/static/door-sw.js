// The door page's service worker (issue 15): the page and its scripts reload while the
// hall's network is down. Network first for the door page (a fresh copy is kept), cache
// first for its static files; the day's list and the queue stay in door.js's storage.
// Signing out forgets the kept pages. Every other request goes to the network untouched.
"use strict";
var CACHE = "mk-door-v1";
var STATIC = ["/static/door.js", "/static/console.css", "/static/jsQR.js"];

self.addEventListener("install", function (event) {
  event.waitUntil(
    caches.open(CACHE).then(function (cache) { return cache.addAll(STATIC); })
      .then(function () { return self.skipWaiting(); })
  );
});

self.addEventListener("activate", function (event) {
  event.waitUntil(
    caches.keys().then(function (keys) {
      return Promise.all(keys.filter(function (k) { return k !== CACHE; })
        .map(function (k) { return caches.delete(k); }));
    }).then(function () { return self.clients.claim(); })
  );
});

function isDoorPage(url) { return /^\/events\/[^/]+\/door$/.test(url.pathname); }

self.addEventListener("fetch", function (event) {
  var req = event.request;
  var url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  if (req.method === "POST" && url.pathname === "/sign-out") {
    event.waitUntil(caches.delete(CACHE));
    return;
  }
  if (req.method !== "GET") return;
  if (isDoorPage(url) && !url.searchParams.get("q")) {
    event.respondWith(
      fetch(req).then(function (res) {
        if (res.ok) {
          var copy = res.clone();
          caches.open(CACHE).then(function (cache) { cache.put(url.pathname, copy); });
        }
        return res;
      }).catch(function () {
        return caches.match(url.pathname).then(function (hit) { return hit || Response.error(); });
      })
    );
    return;
  }
  if (STATIC.indexOf(url.pathname) >= 0) {
    event.respondWith(
      caches.match(url.pathname).then(function (hit) {
        var fresh = fetch(req).then(function (res) {
          if (res.ok) {
            var copy = res.clone();
            caches.open(CACHE).then(function (cache) { cache.put(url.pathname, copy); });
          }
          return res;
        });
        return hit || fresh;
      })
    );
  }
});
