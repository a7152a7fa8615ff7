/* steplab live view: polls GET /api/live/frame about 30 times a second while the session page is open (once a
 * second in a hidden tab), keeps the last window of the force traces (only the new blocks come) and redraws
 * them on a canvas at the next animation frame; updates the readouts, the left/right load bar and the live
 * reps.  One request at a time; nothing runs on other pages.
 *
 * Benchmark hooks on #live-frame-stamp, set right after the new data is drawn (before the next paint):
 *   data-frame       +1 per frame drawn
 *   data-arrival-ms  host wall-clock time (ms since the epoch) when the newest sample drawn arrived
 */
(function () {
  "use strict";
  var S = {gen: null, last: -1, reps: -1, band: [45, 55], root: null, frame: 0, share: null};
  window.steplabLiveState = S;

  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    steplabLive: {
      band: function (value) {
        var lo = value && value.length === 2 ? Number(value[0]) : 45;
        var hi = value && value.length === 2 ? Number(value[1]) : 55;
        S.band = [lo, hi];
        paintBar();
        return {left: lo + "%", width: (hi - lo) + "%"};
      }
    }
  });

  function el(id) { return document.getElementById(id); }
  function setText(id, text) {
    var e = el(id);
    if (e && e.textContent !== text) { e.textContent = text; }
  }
  function finite(v) { return typeof v === "number" && isFinite(v); }
  function sig3(v) { return finite(v) ? String(Number(v.toPrecision(3))) : "\u2014"; }

  var UNITS = [["_bw_s", "BW/s"], ["_bw", "BW"], ["_mm_s", "mm/s"], ["_m_s", "m/s"], ["_mm", "mm"],
               ["_pct", "%"], ["_s", "s"], ["_n", "N"]];
  function label(name) {
    for (var i = 0; i < UNITS.length; i++) {
      var u = UNITS[i][0];
      if (name.slice(-u.length) === u) {
        return name.slice(0, -u.length).replace(/_/g, " ") + " (" + UNITS[i][1] + ")";
      }
    }
    return name.replace(/_/g, " ");
  }
  var PHASES = {weighing: "weighing the subject", waiting: "waiting for the subject", ready: "ready: standing still",
                moving: "moving"};

  function paintBar() {
    var bar = el("live-loadbar"), fill = el("live-loadbar-left");
    if (!bar || !fill) { return; }
    var share = S.share;
    var cls = "loadbar ";
    if (!finite(share)) {
      fill.style.width = "0%";
      cls += "no-load";
    } else {
      fill.style.width = share.toFixed(1) + "%";
      cls += (share >= S.band[0] && share <= S.band[1]) ? "in-band" : "out-of-band";
    }
    if (bar.className !== cls) { bar.className = cls; }
  }

  function readouts(f) {
    var rate = f.rate_hz > 0 ? f.rate_hz + " Hz" : "rate not yet known";
    setText("live-status", (f.connected ? "connected" : "NOT CONNECTED") + " \u00b7 " + f.device + " \u00b7 " + rate +
            " \u00b7 " + f.status + " \u00b7 " + (f.calibrated ? "calibrated" : "not calibrated (nominal gains)"));
    var q = f.lost_samples + " lost samples \u00b7 " + f.crc_errors + " CRC errors \u00b7 " + f.saturated_frames +
            " saturated frames";
    if (f.queue_dropped_samples) { q += " \u00b7 " + f.queue_dropped_samples + " dropped by a slow consumer"; }
    if (f.device_resets) { q += " \u00b7 " + f.device_resets + " device resets"; }
    setText("live-quality", q);
    var qe = el("live-quality");
    if (qe) {
      var bad = f.lost_samples || f.crc_errors || f.saturated_frames || f.queue_dropped_samples;
      qe.className = "live-quality " + (bad ? "quality-bad" : "quality-ok");
    }
    (f.names || []).forEach(function (name) {
      var v = f.load_n ? f.load_n[name] : null;
      setText("plate-" + name + "-n", finite(v) ? Math.round(v) + " N" : "\u2014");
    });
    S.share = f.left_share_pct;
    setText("live-share", finite(S.share) ? Math.round(S.share) + " % / " + (100 - Math.round(S.share)) + " %"
            : "\u2014");
    paintBar();
    var phase = f.phase ? "analysis: " + (PHASES[f.phase] || f.phase) : "analysis: waiting for data";
    if (finite(f.body_weight_n)) { phase += " \u00b7 body weight " + Math.round(f.body_weight_n) + " N"; }
    setText("live-phase", phase);
    setText("live-rep-count", f.rep_count + (f.rep_count === 1 ? " rep" : " reps"));
    var rec = f.recording;
    setText("live-recording", rec ? "\u25cf recording " + rec.elapsed_s.toFixed(1) + " / " + rec.seconds + " s" : "");
    if (f.reps) { repsTable(f.reps); S.reps = f.reps.length; }
  }

  function repsTable(reps) {
    var box = el("live-reps");
    if (!box) { return; }
    if (!reps.length) { box.innerHTML = '<div class="no-reps">no reps yet</div>'; return; }
    var names = Object.keys(reps[reps.length - 1].headline);
    var t = document.createElement("table");
    t.id = "live-reps-table";
    var head = "<thead><tr><th>rep</th><th>lead</th>";
    names.forEach(function (n) { head += "<th>" + label(n) + "</th>"; });
    var body = "</tr></thead><tbody>";
    reps.slice(-10).reverse().forEach(function (r) {
      body += '<tr class="live-rep"><td>' + r.number + "</td><td>" + (r.lead || "\u2014") + "</td>";
      names.forEach(function (n) { body += "<td>" + sig3(r.headline[n]) + "</td>"; });
      body += "</tr>";
    });
    t.innerHTML = head + body + "</tbody>";
    box.replaceChildren(t);
  }

  function stamp(arrivalMs) {
    var s = el("live-frame-stamp");
    if (!s) { return; }
    S.frame += 1;
    s.setAttribute("data-arrival-ms", arrivalMs === null ? "" : String(arrivalMs));
    s.setAttribute("data-frame", String(S.frame));
  }

  /* -- the force traces: a canvas redrawn only when new blocks came (a few ms, unlike a Plotly redraw) -- */
  var T = {blocks: [], y: [], names: [], colours: {}, windowPoints: 0, blockS: 0.01, offsetS: 0, yr: null,
           pending: null, fresh: false, raf: 0};
  S.traces = T;  // what is drawn (block numbers, values per plate), for tests and the benchmark

  function take(f) {
    var n = f.fz.length ? f.fz[0].length : 0;
    var restart = f.reset || S.gen !== f.generation || T.names.length !== f.names.length;
    S.gen = f.generation;
    S.last = f.last_block;
    if (restart) {
      T.blocks = []; T.y = f.names.map(function () { return []; }); T.names = f.names.slice(); T.yr = null;
    }
    if (!n) { return restart; }
    T.blockS = f.block_samples / f.rate_hz;
    T.offsetS = (f.block_samples - 1) / f.rate_hz;
    T.windowPoints = f.window_points;
    for (var k = 0; k < n; k++) { T.blocks.push(f.first_block + k); }
    for (var p = 0; p < f.fz.length; p++) { Array.prototype.push.apply(T.y[p], f.fz[p]); }
    var extra = T.blocks.length - T.windowPoints;
    if (extra > 0) {
      T.blocks.splice(0, extra);
      for (p = 0; p < T.y.length; p++) { T.y[p].splice(0, extra); }
    }
    return true;
  }

  function niceStep(span, n) {
    var raw = span / n, mag = Math.pow(10, Math.floor(Math.log10(raw))), r = raw / mag;
    return (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * mag;
  }

  function paint(canvas) {
    var box = canvas.parentNode;
    var dpr = window.devicePixelRatio || 1;
    var w = Math.max(200, box.clientWidth), h = Number(canvas.getAttribute("data-height")) || 300;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
      canvas.style.width = w + "px"; canvas.style.height = h + "px";
    }
    var g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    var L = 56, R = 10, TOP = 8, B = 26, pw = w - L - R, ph = h - TOP - B;
    var nb = T.blocks.length;
    var lo = 0, hi = 100;  // N: the range grows at once and shrinks only at a restart, so it never jumps about
    for (var p = 0; p < T.y.length; p++) {
      for (var i = 0; i < nb; i++) {
        var v = T.y[p][i];
        if (v !== null) { if (v < lo) { lo = v; } if (v > hi) { hi = v; } }
      }
    }
    var room = 0.04 * (hi - lo);  // a margin around the data, taken once (never compounded frame after frame)
    lo -= room; hi += room;
    if (T.yr) { lo = Math.min(lo, T.yr[0]); hi = Math.max(hi, T.yr[1]); }
    T.yr = [lo, hi];
    var ystep = niceStep(hi - lo, 5);
    var tEnd = nb ? T.blocks[nb - 1] * T.blockS + T.offsetS : 0;
    var span = T.windowPoints * T.blockS || 10, t0 = tEnd - span;
    function X(t) { return L + (t - t0) / span * pw; }
    function Y(v) { return TOP + (hi - v) / (hi - lo) * ph; }
    g.font = "11px system-ui, sans-serif"; g.fillStyle = "#495057"; g.strokeStyle = "#e9ecef"; g.lineWidth = 1;
    g.textAlign = "right"; g.textBaseline = "middle";
    for (var yv = Math.ceil(lo / ystep) * ystep; yv <= hi + 1e-9; yv += ystep) {
      g.beginPath(); g.moveTo(L, Math.round(Y(yv)) + 0.5); g.lineTo(L + pw, Math.round(Y(yv)) + 0.5); g.stroke();
      g.fillText(String(Math.round(yv)), L - 6, Y(yv));
    }
    g.textAlign = "center"; g.textBaseline = "top";
    var tstep = niceStep(span, 10);
    for (var tv = Math.ceil(t0 / tstep) * tstep; tv <= tEnd + 1e-9; tv += tstep) {
      if (tv < 0) { continue; }
      g.beginPath(); g.moveTo(Math.round(X(tv)) + 0.5, TOP); g.lineTo(Math.round(X(tv)) + 0.5, TOP + ph); g.stroke();
      g.fillText(String(Math.round(tv * 10) / 10), X(tv), TOP + ph + 6);
    }
    g.save();
    g.beginPath(); g.rect(L, TOP, pw, ph); g.clip();
    g.lineWidth = 1.6; g.lineJoin = "round";
    for (p = 0; p < T.y.length; p++) {
      g.strokeStyle = T.colours[T.names[p]] || "#343a40";
      g.beginPath();
      var pen = false;
      for (i = 0; i < nb; i++) {
        var yy = T.y[p][i];
        if (yy === null) { pen = false; continue; }  // a lost block: a gap, never a line across it
        var xx = X(T.blocks[i] * T.blockS + T.offsetS);
        if (pen) { g.lineTo(xx, Y(yy)); } else { g.moveTo(xx, Y(yy)); pen = true; }
      }
      g.stroke();
    }
    g.restore();
    canvas.setAttribute("data-points", String(nb));
    canvas.setAttribute("data-t-end-s", tEnd.toFixed(3));
  }

  function schedule(arrivalMs, fresh) {
    if (fresh) { T.pending = arrivalMs; T.fresh = true; }
    if (T.raf) { return; }
    T.raf = window.requestAnimationFrame(function () {
      T.raf = 0;
      var canvas = el("live-forces-canvas");
      if (!canvas) { return; }
      paint(canvas);
      if (T.fresh) { T.fresh = false; stamp(T.pending); }  // drawn: this frame shows the newest sample taken
    });
  }

  function loop() {
    var root = el("session-live");
    var canvas = el("live-forces-canvas");
    if (!root || !canvas) { S.root = null; window.setTimeout(loop, 250); return; }
    if (root !== S.root) {
      S.root = root; S.gen = null; S.last = -1; S.reps = -1;
      try { T.colours = JSON.parse(root.getAttribute("data-colours") || "{}"); } catch (e) { T.colours = {}; }
    }
    var interval = document.hidden ? 1000 : (Number(root.getAttribute("data-interval-ms")) || 33);
    var t0 = window.performance.now();
    var wait = interval;
    var url = "/api/live/frame?after=" + S.last + "&reps=" + S.reps + (S.gen === null ? "" : "&gen=" + S.gen);
    window.fetch(url, {credentials: "same-origin", cache: "no-store"})
      .then(function (r) {
        if (!r.ok) { throw new Error(r.status === 401 ? "logged out: log in again" : "the dashboard answered " + r.status); }
        return r.json();
      })
      .then(function (f) {
        readouts(f);
        var fresh = f.fz.length > 0 && f.fz[0].length > 0;
        if (take(f)) { schedule(f.arrival_ms, fresh); }
      })
      .catch(function (err) { setText("live-status", "no live data: " + err.message); wait = 1000; })
      .then(function () {
        window.setTimeout(loop, Math.max(0, wait - (window.performance.now() - t0)));
      });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", loop);
  } else {
    loop();
  }
}());
