/* steplab live view: polls GET /api/live/frame about 30 times a second while the session page is open and
 * extends the force traces with the new blocks only (Plotly.extendTraces), updates the readouts, the
 * left/right load bar and the live reps.  One request at a time; nothing runs on other pages.
 *
 * Benchmark hooks on #live-frame-stamp, set right after the new data is drawn (before the next paint):
 *   data-frame       +1 per frame drawn
 *   data-arrival-ms  host wall-clock time (ms since the epoch) when the newest sample drawn arrived
 */
(function () {
  "use strict";
  var S = {gen: null, last: -1, reps: -1, band: [45, 55], gd: null, frame: 0, share: null};
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

  function draw(gd, f) {
    readouts(f);
    var n = f.fz.length ? f.fz[0].length : 0;
    var restart = f.reset || S.gen !== f.generation;
    S.gen = f.generation;
    S.last = f.last_block;
    if (!n && !restart) { return Promise.resolve(); }
    var x = new Array(n);
    var bs = f.block_samples;
    for (var k = 0; k < n; k++) { x[k] = ((f.first_block + k) * bs + bs - 1) / f.rate_hz; }
    var idx = f.fz.map(function (_, i) { return i; });
    var done;
    if (restart || gd.data.length !== f.fz.length) {
      var traces = f.names.map(function (name, i) {
        var old = gd.data[i] || {type: "scatter", mode: "lines", name: name};
        return Object.assign({}, old, {x: x.slice(), y: f.fz[i]});
      });
      done = window.Plotly.react(gd, traces, gd.layout);
    } else {
      done = window.Plotly.extendTraces(gd, {x: idx.map(function () { return x; }), y: f.fz}, idx,
                                        f.window_points);
    }
    return Promise.resolve(done).then(function () {
      if (!n) { return; }
      return new Promise(function (resolve) {
        window.requestAnimationFrame(function () { stamp(f.arrival_ms); resolve(); });
      });
    });
  }

  function loop() {
    var root = el("session-live");
    if (!root) { S.gd = null; window.setTimeout(loop, 250); return; }
    var gd = document.querySelector("#live-forces .js-plotly-plot");
    if (!gd || !window.Plotly || !gd.data) { window.setTimeout(loop, 50); return; }
    if (gd !== S.gd) { S.gd = gd; S.gen = null; S.last = -1; S.reps = -1; }
    var interval = Number(root.getAttribute("data-interval-ms")) || 33;
    var t0 = window.performance.now();
    var wait = interval;
    var url = "/api/live/frame?after=" + S.last + "&reps=" + S.reps + (S.gen === null ? "" : "&gen=" + S.gen);
    window.fetch(url, {credentials: "same-origin", cache: "no-store"})
      .then(function (r) {
        if (!r.ok) { throw new Error(r.status === 401 ? "logged out: log in again" : "the dashboard answered " + r.status); }
        return r.json();
      })
      .then(function (f) { return draw(gd, f); })
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
