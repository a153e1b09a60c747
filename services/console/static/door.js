// The registrar's scanner: camera (BarcodeDetector, else jsQR served by the console),
// tickets verified on the device with registration's Ed25519 public key, today's
// confirmed list kept in localStorage, check-ins queued while the network is down and
// sent when it returns; a service worker (/door-sw.js) lets the page reload offline.
// Everything else on the page works without this script.
(function () {
  "use strict";
  var root = document.getElementById("scanner");
  if (!root) return;
  root.hidden = false;
  var eventId = root.dataset.event, csrf = root.dataset.csrf, today = root.dataset.today;
  var L = JSON.parse(root.dataset.labels);
  var listKey = "mk.door.list." + eventId, queueKey = "mk.door.queue." + eventId, keyKey = "mk.door.key";
  var publicKey = null, list = load(listKey, {}), queue = load(queueKey, []);
  var video = document.getElementById("camera"), toggle = document.getElementById("scan-toggle");
  var answerBox = document.getElementById("answer"), net = document.getElementById("net");
  var stream = null, detector = null, canvas = document.createElement("canvas"), last = {t: "", at: 0};

  function load(key, fallback) { try { return JSON.parse(localStorage.getItem(key)) || fallback; } catch (e) { return fallback; } }
  function save() { localStorage.setItem(listKey, JSON.stringify(list)); localStorage.setItem(queueKey, JSON.stringify(queue)); counts(); }
  function counts() { document.getElementById("cached").textContent = Object.keys(list).length; document.getElementById("queued").textContent = queue.length; }
  function hhmm(iso) { try { return new Date(iso).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", hour12: false, timeZone: "Africa/Dar_es_Salaam"}); } catch (e) { return ""; } }
  function setOffline(off) { net.hidden = !off; }

  function b32decode(s) {
    var alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", bits = 0, value = 0, out = [];
    for (var i = 0; i < s.length; i++) {
      var v = alphabet.indexOf(s[i]); if (v < 0) return null;
      value = (value << 5) | v; bits += 5;
      if (bits >= 8) { out.push((value >>> (bits - 8)) & 255); bits -= 8; }
    }
    return new Uint8Array(out);
  }
  function uuid(bytes) {
    var h = Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }
  function b64url(s) { s = s.replace(/-/g, "+").replace(/_/g, "/"); while (s.length % 4) s += "="; var r = atob(s), a = new Uint8Array(r.length); for (var i = 0; i < r.length; i++) a[i] = r.charCodeAt(i); return a; }

  async function loadKey() {
    var raw = localStorage.getItem(keyKey);
    try {
      var res = await fetch("/tickets/public-key.json", {credentials: "same-origin"});
      if (res.ok) { raw = (await res.json()).public_key; localStorage.setItem(keyKey, raw); }
    } catch (e) { /* offline: the kept key */ }
    if (raw && crypto.subtle) {
      try { publicKey = await crypto.subtle.importKey("raw", b64url(raw), {name: "Ed25519"}, false, ["verify"]); } catch (e) { publicKey = null; }
    }
  }
  async function loadList() {
    try {
      var res = await fetch("/events/" + eventId + "/door/list.json", {credentials: "same-origin"});
      if (!res.ok) return;
      var data = await res.json(), fresh = {};
      data.items.forEach(function (p) { fresh[p.id] = p; });
      queue.forEach(function (q) { if (fresh[q.id]) fresh[q.id].checkins[today] = fresh[q.id].checkins[today] || q.at; });
      list = fresh; save(); setOffline(false);
    } catch (e) { setOffline(true); }
  }

  // "MK2" + base32(16-byte id + 64-byte Ed25519 signature of "MK2" + id): verified here.
  async function verify(ticket) {
    if (ticket.indexOf("MK2") !== 0 || ticket.length !== 131) return {kind: "other"};
    var data = b32decode(ticket.slice(3));
    if (!data || data.length !== 80) return {kind: "invalid"};
    var id = data.slice(0, 16), sig = data.slice(16), msg = new Uint8Array(19);
    msg.set([77, 75, 50]); msg.set(id, 3);
    if (publicKey) {
      var ok = await crypto.subtle.verify({name: "Ed25519"}, publicKey, sig, msg);
      if (!ok) return {kind: "invalid"};
    }
    return {kind: "verified", id: uuid(id)};
  }

  function show(kind, name, detail) {
    answerBox.className = "answer answer-" + kind;
    document.getElementById("answer-title").textContent = L[kind] || L.error;
    document.getElementById("answer-name").textContent = name || "";
    document.getElementById("answer-detail").textContent = detail || "";
    answerBox.hidden = false; answerBox.focus();
  }
  document.getElementById("answer-next").addEventListener("click", function () { answerBox.hidden = true; });

  async function send(ticket) {
    var res = await fetch("/events/" + eventId + "/door/check-in", {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify({ticket: ticket})
    });
    if (!res.ok && res.status >= 500) throw new Error("unavailable");
    return res.json();
  }

  async function handle(ticket) {
    ticket = ticket.trim();
    var v = await verify(ticket);
    if (v.kind === "invalid") { show("invalid"); return; }
    var entry = v.id ? list[v.id] : null;
    try {
      if (!navigator.onLine) throw new Error("offline");
      var a = await send(ticket);
      setOffline(false);
      if (a.answer === "checked_in" && entry) { entry.checkins[today] = new Date().toISOString(); save(); }
      var detail = a.answer === "already" ? L.already_at.replace("{time}", a.time || "") : (a.institution || a.message || "");
      show(a.answer, a.name || (entry && entry.full_name), detail);
    } catch (e) {
      setOffline(true);
      if (v.kind !== "verified") { show("error", "", L.queued); return; }
      if (!entry) { show("not_confirmed"); return; }
      var seen = entry.checkins[today];
      if (seen) { show("already", entry.full_name, L.already_at.replace("{time}", hhmm(seen))); return; }
      var at = new Date().toISOString();
      entry.checkins[today] = at;
      queue.push({ticket: ticket, id: v.id, at: at});
      save();
      show("queued", entry.full_name, entry.institution);
    }
  }

  async function flush() {
    if (!queue.length || !navigator.onLine) return;
    var rest = [];
    for (var i = 0; i < queue.length; i++) {
      try { await send(queue[i].ticket); } catch (e) { rest.push(queue[i]); }
    }
    queue = rest; save(); setOffline(rest.length > 0);
  }
  window.addEventListener("online", function () { setOffline(false); flush().then(loadList); });
  window.addEventListener("offline", function () { setOffline(true); });
  setInterval(flush, 5000);

  // Search the kept list while offline (the form asks the server when online).
  var findForm = document.getElementById("find-form");
  findForm.addEventListener("submit", function (ev) {
    if (navigator.onLine) return;
    ev.preventDefault();
    var q = document.getElementById("door-q").value.trim().toLowerCase(), ul = document.getElementById("found");
    ul.textContent = "";
    Object.keys(list).map(function (k) { return list[k]; }).filter(function (p) {
      return q && (p.full_name.toLowerCase().indexOf(q) >= 0 || p.reference.toLowerCase().indexOf(q) >= 0);
    }).slice(0, 20).forEach(function (p) {
      var li = document.createElement("li"), b = document.createElement("button");
      li.textContent = p.full_name + " · " + p.institution + " · " + p.reference + " ";
      b.type = "button"; b.textContent = L.check_in;
      b.setAttribute("aria-label", L.check_in + ": " + p.full_name);
      b.addEventListener("click", function () { handle(p.ticket); });
      li.appendChild(b); ul.appendChild(li);
    });
  });

  async function tick() {
    if (!stream) return;
    if (video.readyState >= 2 && answerBox.hidden) {
      var text = null;
      try {
        if (detector) {
          var codes = await detector.detect(video);
          if (codes.length) text = codes[0].rawValue;
        } else if (window.jsQR) {
          canvas.width = video.videoWidth; canvas.height = video.videoHeight;
          var g = canvas.getContext("2d", {willReadFrequently: true});
          g.drawImage(video, 0, 0);
          var img = g.getImageData(0, 0, canvas.width, canvas.height);
          var code = window.jsQR(img.data, img.width, img.height, {inversionAttempts: "dontInvert"});
          if (code) text = code.data;
        }
      } catch (e) { /* a frame that cannot be read */ }
      var now = Date.now();
      if (text && !(text === last.t && now - last.at < 4000)) { last = {t: text, at: now}; await handle(text); }
    }
    setTimeout(tick, 200);
  }
  toggle.addEventListener("click", async function () {
    if (stream) {
      stream.getTracks().forEach(function (tr) { tr.stop(); }); stream = null;
      video.removeAttribute("data-on"); toggle.textContent = L.start; return;
    }
    try {
      if ("BarcodeDetector" in window) {
        var formats = await window.BarcodeDetector.getSupportedFormats();
        if (formats.indexOf("qr_code") >= 0) detector = new window.BarcodeDetector({formats: ["qr_code"]});
      }
    } catch (e) { detector = null; }
    stream = await navigator.mediaDevices.getUserMedia({video: {facingMode: "environment"}, audio: false});
    video.srcObject = stream; video.setAttribute("data-on", ""); await video.play();
    toggle.textContent = L.stop; tick();
  });

  counts();
  loadKey().then(loadList).then(flush);
  // The page itself reloads offline too: its service worker (/door-sw.js) keeps a copy.
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/door-sw.js").catch(function () {});
  }
})();
