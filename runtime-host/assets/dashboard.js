"use strict";
// The runtime-host admin page. Polls GET /api/v1/stats every 2 s and renders it with DOM
// calls only (textContent, never innerHTML), so nothing from a request can become markup.
(function () {
  const POLL_MS = 2000;
  const SVG = "http://www.w3.org/2000/svg";
  const TOKEN_KEY = "runtime-host-admin-token";
  const $ = (id) => document.getElementById(id);

  // The admin token arrives once as ?token=; keep it for this tab only, take it out of the
  // address bar (history, bookmarks, screenshots) and send it as a header from then on.
  const params = new URLSearchParams(location.search);
  let token = params.get("token");
  if (token !== null) {
    try { sessionStorage.setItem(TOKEN_KEY, token); } catch (_) { /* storage off: keep in memory */ }
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
  } else {
    try { token = sessionStorage.getItem(TOKEN_KEY); } catch (_) { token = null; }
  }

  let selectedId = null;
  let timer = null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c instanceof Node ? c : String(c));
    return node;
  }
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function fixed(x, digits) { return x === null || x === undefined ? "–" : Number(x).toFixed(digits); }
  function ms(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const m = seconds * 1000;
    return (m < 10 ? m.toFixed(2) : m < 100 ? m.toFixed(1) : m.toFixed(0)) + " ms";
  }
  function pct(x, digits) { return x === null || x === undefined ? "–" : (x * 100).toFixed(digits) + " %"; }
  function duration(s) {
    s = Math.floor(s);
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    const text = (d ? d + "d " : "") + (d || h ? h + "h " : "") + (d || h || m ? m + "m " : "") + (s % 60) + "s";
    return s >= 60 && s % 60 === 0 ? text.replace(/ 0s$/, "") : text;
  }
  function bytes(n) {
    if (n >= 1 << 30) return (n / (1 << 30)).toFixed(1) + " GiB";
    if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + " MiB";
    if (n >= 1 << 10) return (n / (1 << 10)).toFixed(1) + " KiB";
    return n + " B";
  }
  function windowNamed(stats, name) { return stats.traffic.windows.find((w) => w.name === name) || null; }
  function kvTable(rows, kind) {
    const body = el("tbody");
    for (const [k, v, cls] of rows) body.append(el("tr", {}, el("td", {}, k), el("td", cls ? { class: cls } : {}, v)));
    return el("table", { class: "kv" + (kind ? " " + kind : "") }, body);
  }

  // A line chart of one series over the last 5 minutes, with a marker per point (so it reads
  // without colour), the newest value written out, and a text summary for screen readers.
  function lineChart(target, points, value, opts) {
    const W = 320, H = 130, L = 40, R = 8, T = 18, B = 20;
    const end = points.length ? points[points.length - 1].at_s : 0;
    // At most 5 minutes; less while the host is younger, so early points are not squeezed.
    const span = Math.min(300, Math.max(60, points.length ? end - points[0].at_s + 5 : 60));
    const vals = points.map(value);
    const known = vals.filter((v) => v !== null);
    const max = Math.max(opts.floor, ...known) * 1.15;
    const x = (at) => L + (W - L - R) * (1 - Math.min(span, end - at) / span);
    const y = (v) => T + (H - T - B) * (1 - v / max);
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
    const latest = known.length ? vals[vals.length - 1] : null;
    const summary = `${opts.label}: latest ${latest === null ? "no data" : opts.fmt(latest)}, ` +
      `highest ${known.length ? opts.fmt(Math.max(...known)) : "no data"} in the last ${duration(span)}`;
    root.append(svg("title", {}, summary));
    for (const f of [0, 0.5, 1]) {
      root.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(max * f / 1.15), y2: y(max * f / 1.15) }));
      root.append(svg("text", { x: L - 4, y: y(max * f / 1.15) + 4, "text-anchor": "end" }, opts.fmt(max * f / 1.15, true)));
    }
    root.append(svg("text", { x: L, y: H - 4 }, "−" + duration(span)));
    root.append(svg("text", { x: W - R, y: H - 4, "text-anchor": "end" }, "now"));
    let path = "";
    let pen = false;
    points.forEach((p, i) => {
      const v = vals[i];
      if (v === null || end - p.at_s > span) { pen = false; return; }
      path += (pen ? "L" : "M") + x(p.at_s).toFixed(1) + " " + y(v).toFixed(1) + " ";
      pen = true;
    });
    if (path) {
      const line = svg("path", { d: path, class: "series", stroke: opts.colour });
      if (opts.dash) line.setAttribute("stroke-dasharray", opts.dash);
      root.append(line);
    }
    points.forEach((p, i) => {
      const v = vals[i];
      if (v === null || end - p.at_s > span) return;
      const m = marker(opts.marker, x(p.at_s), y(v), opts.colour);
      m.setAttribute("class", "point");
      if (opts.onPick) {
        // A point is a link to the requests of its interval (keyboard too).
        m.setAttribute("tabindex", "0");
        m.setAttribute("role", "button");
        m.setAttribute("aria-label", `${opts.label} ${opts.fmt(v)}: show the slowest request of this interval`);
        m.append(svg("title", {}, `${opts.fmt(v)}: click for the slowest request and its trace id`));
        m.addEventListener("click", () => opts.onPick(p));
        m.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); opts.onPick(p); } });
      }
      root.append(m);
    });
    root.append(svg("text", { class: "value", x: W - R, y: 13, "text-anchor": "end" },
      latest === null ? "no traffic" : "now " + opts.fmt(latest)));
    target.replaceChildren(root);
  }
  function marker(shape, cx, cy, colour) {
    if (shape === "square") return svg("rect", { x: cx - 3, y: cy - 3, width: 6, height: 6, fill: colour });
    if (shape === "triangle") return svg("path", { d: `M${cx} ${cy - 4} L${cx + 4} ${cy + 3} L${cx - 4} ${cy + 3} Z`, fill: colour });
    return svg("circle", { cx, cy, r: 3, fill: colour });
  }

  // Horizontal bars per status class, each with its own fill pattern and its count as text.
  const CLASS_STYLE = {
    "2xx": ["#1e6b34", "solid"], "3xx": ["#1f5fae", "dots"], "4xx": ["#8a5a00", "stripes"],
    "5xx": ["#b3261e", "cross"], "1xx": ["#5b6673", "dots"], "none": ["#6a1b9a", "cross"],
  };
  function classChart(target, classes) {
    const names = ["2xx", "3xx", "4xx", "5xx", "1xx", "none"];
    const total = names.reduce((s, n) => s + classes[n], 0);
    const W = 320, row = 20, L = 42, R = 90;
    const root = svg("svg", { viewBox: `0 0 ${W} ${row * names.length + 4}`, role: "img" });
    root.append(svg("title", {}, "Status classes, last 5 minutes: " + names.map((n) => `${n} ${classes[n]}`).join(", ")));
    const defs = svg("defs");
    for (const n of names) {
      const [colour, kind] = CLASS_STYLE[n];
      const p = svg("pattern", { id: "pat-" + n, width: 6, height: 6, patternUnits: "userSpaceOnUse" });
      p.append(svg("rect", { width: 6, height: 6, fill: kind === "solid" ? colour : "#fff" }));
      if (kind === "dots") p.append(svg("circle", { cx: 3, cy: 3, r: 1.6, fill: colour }));
      if (kind === "stripes") p.append(svg("path", { d: "M0 6 L6 0", stroke: colour, "stroke-width": 2 }));
      if (kind === "cross") p.append(svg("path", { d: "M0 0 L6 6 M0 6 L6 0", stroke: colour, "stroke-width": 1.5 }));
      defs.append(p);
    }
    root.append(defs);
    names.forEach((n, i) => {
      const yy = 2 + i * row;
      const width = total ? (W - L - R) * classes[n] / total : 0;
      root.append(svg("text", { x: 0, y: yy + 13 }, n === "none" ? "none" : n));
      root.append(svg("rect", { x: L, y: yy + 2, width: W - L - R, height: row - 6, fill: "none", stroke: "#d9dee5" }));
      root.append(svg("rect", { x: L, y: yy + 2, width: Math.max(width, classes[n] ? 1 : 0), height: row - 6,
        fill: `url(#pat-${n})`, stroke: CLASS_STYLE[n][0] }));
      root.append(svg("text", { class: "value", x: W - R + 6, y: yy + 14 },
        `${classes[n]}${total ? " (" + (100 * classes[n] / total).toFixed(0) + "%)" : ""}`));
    });
    target.replaceChildren(root);
  }

  function renderTiles(stats) {
    const w1 = windowNamed(stats, "1m"), w5 = windowNamed(stats, "5m");
    $("version").textContent = "v" + stats.host.version;
    const ready = stats.readiness.ready;
    const badge = $("ready");
    badge.textContent = ready ? "✓ ready" : "✗ not ready";
    badge.className = "badge " + (ready ? "ok" : "bad");
    $("uptime").textContent = duration(stats.host.uptime_s);
    $("started").textContent = stats.host.started_at;
    $("rate-1m").textContent = w1 ? fixed(w1.request_rate, 2) : "–";
    $("rate-5m").textContent = w5 ? fixed(w5.request_rate, 2) + " req/s" : "–";
    $("err-1m").textContent = w1 ? (w1.error_ratio === null ? "–" : pct(w1.error_ratio, 2)) : "–";
    $("err-5m").textContent = w5 ? (w5.error_ratio === null ? "–" : pct(w5.error_ratio, 2)) + ` (${fixed(w5.error_rate, 2)}/s)` : "–";
    $("p50").textContent = w1 ? ms(w1.p50_s) : "–";
    $("p95").textContent = w1 ? ms(w1.p95_s) : "–";
    $("p99").textContent = w1 ? ms(w1.p99_s) : "–";
    $("active").textContent = stats.traffic.active_requests;
    $("total-requests").textContent = stats.traffic.total.requests;
    $("total-errors").textContent = stats.traffic.total.errors;
  }

  function renderCharts(stats) {
    const pts = stats.traffic.series;
    lineChart($("chart-rate"), pts, (p) => p.request_rate, {
      label: "Request rate", floor: 1, colour: "#1f5fae", marker: "circle",
      fmt: (v, axis) => (axis ? v.toFixed(v < 10 ? 1 : 0) : v.toFixed(2) + " req/s"),
    });
    lineChart($("chart-errors"), pts, (p) => (p.request_rate > 0 ? 100 * p.error_rate / p.request_rate : null), {
      label: "Error ratio", floor: 1, colour: "#b3261e", marker: "square", dash: "6 3",
      fmt: (v, axis) => (axis ? v.toFixed(v < 10 ? 1 : 0) + "%" : v.toFixed(2) + " %"),
    });
    lineChart($("chart-latency"), pts, (p) => (p.p95_s === null ? null : p.p95_s * 1000), {
      label: "Latency p95", floor: 5, colour: "#8a5a00", marker: "triangle", dash: "2 2",
      fmt: (v, axis) => (axis ? v.toFixed(v < 10 ? 1 : 0) : v.toFixed(1) + " ms"),
      onPick: (p) => pickSlowest(stats, p),
    });
    const w5 = windowNamed(stats, "5m");
    classChart($("chart-classes"), w5 ? w5.status_classes : stats.traffic.total.status_classes);
  }

  function objective(title, target, actual, status) {
    const verdict = status.met === null ? el("span", { class: "verdict" }, "– no traffic yet")
      : status.met ? el("span", { class: "verdict met" }, "✓ MET") : el("span", { class: "verdict missed" }, "✗ MISSED");
    const used = status.budget_used;
    const meter = el("div", { class: "meter" + (used !== null && used > 1 ? " over" : ""), role: "meter",
      "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": used === null ? "0" : String(Math.round(used * 100)) });
    const fill = el("span");
    fill.style.width = (used === null ? 0 : Math.min(100, used * 100)) + "%";
    meter.append(fill);
    return el("div", { class: "objective" },
      el("p", {}, el("strong", {}, title), " ", verdict),
      el("p", {}, "objective ", el("strong", {}, target), " · actual ", el("strong", {}, actual)),
      el("p", {}, "error budget used: ", el("strong", { class: "budget" }, used === null ? "–" : (used * 100).toFixed(1) + " %")),
      meter);
  }
  function renderSlo(stats) {
    const slo = stats.slo;
    const box = $("slo");
    if (!slo) { box.replaceChildren(el("p", { class: "muted" }, "no data yet")); return; }
    $("slo-window").textContent = `(over the last ${duration(slo.window_s)})`;
    const q = Math.round(slo.latency_quantile * 100);
    box.replaceChildren(
      objective("Availability", pct(slo.availability.objective, 2), pct(slo.availability.actual, 3), slo.availability),
      objective(`Latency p${q}`, "< " + ms(slo.latency.objective), ms(slo.latency.actual), slo.latency));
  }

  // From a latency point to a trace: the slowest listed request of the point's interval (one
  // with a trace id first), shown with its full trace id and opened in the list, filtered by it.
  function pickSlowest(stats, point) {
    const started = Date.parse(stats.host.started_at);
    const until = started + point.at_s * 1000;
    // The interval ends at the point and starts at the one before it (points are 5 s apart).
    const series = stats.traffic.series;
    const i = series.indexOf(point);
    const from = started + (i > 0 ? series[i - 1].at_s : point.at_s - 5) * 1000;
    const inInterval = stats.recent.requests.filter((r) => {
      const t = Date.parse(r.time);
      return r.duration_ms !== null && t > from - 1000 && t <= until + 1000;
    });
    const slowest = (list) => list.reduce((a, b) => (b.duration_ms > a.duration_ms ? b : a), list[0]);
    const traced = inInterval.filter((r) => r.trace_id);
    const pick = $("latency-pick");
    pick.hidden = false;
    if (!inInterval.length) {
      pick.textContent = "No listed request in that interval (the list keeps the newest requests the middleware logged).";
      return;
    }
    const r = slowest(traced.length ? traced : inInterval);
    pick.replaceChildren(`Slowest request then: ${r.method || ""} ${r.path || ""} ${r.duration_ms.toFixed(1)} ms, trace id `,
      el("code", { id: "latency-pick-trace" }, r.trace_id || "none (not traced)"));
    selectedId = r.request_id;
    showDetail(r);
    if (r.trace_id) {
      $("f-id").value = r.trace_id;
      refresh();
    }
  }

  function statusCell(status) {
    const cls = status ? Math.floor(status / 100) : 0;
    return el("td", { class: "st st-" + (cls >= 1 && cls <= 5 ? cls : 0) }, status === null ? "none" : String(status));
  }
  function showDetail(entry) {
    let text = entry.line;
    try { text = JSON.stringify(JSON.parse(entry.line), null, 2); } catch (_) { /* show as it is */ }
    $("detail-line").textContent = text;
    $("detail").hidden = false;
  }
  function renderRecent(stats) {
    const recent = stats.recent;
    const note = $("recent-note");
    if (!recent.enabled) {
      note.hidden = false;
      note.textContent = "The request list is off (--recent-requests 0).";
    } else if (!recent.requests.length && !$("f-status").value && !$("f-route").value && !$("f-id").value) {
      note.hidden = false;
      note.textContent = "No access-log lines yet. Lines appear here when the middleware logs in JSON " +
        "(EDGE_OBS_LOG_FORMAT=json, the default); sampled-out and skipped requests are not listed.";
    } else {
      note.hidden = true;
    }
    $("recent-count").textContent = `(${recent.requests.length} shown, newest first, up to ${recent.capacity} kept)`;
    const routeSelect = $("f-route");
    const current = routeSelect.value;
    const wanted = ["", ...recent.routes];
    if (current && !wanted.includes(current)) wanted.push(current);
    const have = Array.from(routeSelect.options).map((o) => o.value);
    if (have.join("\n") !== wanted.join("\n")) {
      routeSelect.replaceChildren(...wanted.map((r) => el("option", { value: r }, r || "all")));
      routeSelect.value = current;
    }
    const body = el("tbody");
    let selectedStillThere = false;
    for (const r of recent.requests) {
      const time = r.time ? r.time.replace(/^.*T/, "").replace(/Z$/, "") : "–";
      const path = el("td", { class: "path" }, r.path || "–");
      if (r.route) path.append(el("span", { class: "route" }, "route " + r.route));
      const row = el("tr", { tabindex: "0", "data-request-id": r.request_id || "" },
        el("td", { class: "mono" }, time), el("td", {}, r.method || "–"), path, statusCell(r.status),
        el("td", { class: "num" }, r.duration_ms === null ? "–" : r.duration_ms.toFixed(2)),
        el("td", { class: "mono" }, r.request_id || "–"),
        el("td", { class: "mono trace" }, r.trace_id ? r.trace_id.slice(0, 12) + "…" : "–"));
      const open = () => {
        selectedId = r.request_id;
        for (const other of body.querySelectorAll("tr.selected")) other.classList.remove("selected");
        row.classList.add("selected");
        showDetail(r);
      };
      row.addEventListener("click", open);
      row.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } });
      if (selectedId && r.request_id === selectedId) { row.classList.add("selected"); selectedStillThere = true; }
      body.append(row);
    }
    $("recent").tBodies[0].replaceWith(body);
    if (selectedId && !selectedStillThere) { /* keep the detail open: the line is still worth reading */ }
  }

  function renderChain(stats) {
    const rows = stats.chain.components.map((c) => [c.role, `${c.name} · ${c.source === "embedded" ? "embedded" : c.source} · ${bytes(c.size_bytes)}`]);
    if (stats.chain.upstream) rows.push(["upstream", stats.chain.upstream]);
    rows.push(["chain", stats.chain.mode]);
    $("chain").replaceChildren(kvTable(rows));
    $("readiness").textContent = stats.readiness.checks.map((c) => (c.ok ? "[+]" : "[-]") + c.name + (c.ok ? " ok" : " failed")).join("\n") +
      "\nreadyz check " + (stats.readiness.ready ? "passed" : "failed");
    const s = stats.settings;
    const settingRows = s.settings.map((x) => [x.name, x.value + (x.masked ? " (masked)" : "")]);
    const box = [];
    box.push(settingRows.length ? kvTable(settingRows, "stacked") : el("p", { class: "muted" }, "none set: every setting at its default"));
    if (s.other_variables) box.push(el("p", { class: "muted" }, `${s.other_variables} other variable(s) for the components, not shown`));
    $("settings").replaceChildren(...box);
    $("problems").replaceChildren(s.problems.length
      ? kvTable(s.problems.map((p) => [p.variable, `${p.value}: ${p.reason}; using ${p.default_used}`, "nonzero"]), "stacked")
      : el("p", { class: "muted" }, "none"));
    const c = stats.host_counters;
    const count = (label, n) => [label, String(n), n ? "nonzero" : ""];
    const rows2 = Object.entries(c.rejected_requests).map(([k, n]) => count("rejected: " + k, n));
    rows2.push(count("guest traps", c.guest_traps), count("request timeouts", c.request_timeouts),
      ["instantiations", String(c.instantiations)]);
    for (const [k, n] of Object.entries(c.upstream_errors)) rows2.push(count("upstream errors: " + k, n));
    rows2.push(count("invalid metric events", c.invalid_metric_events), count("metric label overflow", c.metric_label_overflow));
    for (const [k, n] of Object.entries(c.otlp_dropped)) rows2.push(count("OTLP dropped: " + k, n));
    for (const [k, n] of Object.entries(c.otlp_export_errors)) rows2.push(count("OTLP export errors: " + k, n));
    $("counters").replaceChildren(kvTable(rows2, "numbers"));
    const l = stats.limits;
    $("limits").replaceChildren(kvTable([
      ["concurrent requests", String(l.max_concurrent_requests)],
      ["request timeout", duration(l.request_timeout_s)],
      ["request body", bytes(l.max_body_bytes)],
      ["request headers", bytes(l.max_header_bytes)],
      ["instance memory", bytes(l.max_memory_bytes)],
      ["instance reuse", l.max_instance_reuse + " requests"],
      ["instance concurrency", String(l.max_instance_concurrency)],
      ["shutdown grace", duration(l.shutdown_grace_s)],
    ], "numbers"));
  }

  function query() {
    const q = new URLSearchParams();
    for (const [id, key] of [["f-status", "status"], ["f-route", "route"], ["f-id", "id"]]) {
      const v = $(id).value.trim();
      if (v) q.set(key, v);
    }
    return q.toString();
  }

  function problem(text) {
    const p = $("problem");
    p.hidden = !text;
    p.textContent = text || "";
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const q = query();
      const response = await fetch("/api/v1/stats" + (q ? "?" + q : ""), {
        headers: token ? { Authorization: "Bearer " + token } : {},
        cache: "no-store",
        credentials: "omit",
      });
      if (response.status === 401) {
        problem("This admin address needs its token: open the page as /?token=<token>.");
      } else if (response.status === 400) {
        problem("Filter not understood: " + (await response.text()));
      } else if (!response.ok) {
        problem("The host answered " + response.status + ".");
      } else {
        const stats = await response.json();
        problem("");
        renderTiles(stats);
        renderCharts(stats);
        renderSlo(stats);
        renderRecent(stats);
        renderChain(stats);
        $("updated").textContent = "updated " + new Date().toLocaleTimeString();
      }
    } catch (_) {
      problem("The host does not answer; retrying.");
    }
    timer = setTimeout(refresh, POLL_MS);
  }

  $("filters").addEventListener("submit", (e) => { e.preventDefault(); refresh(); });
  $("f-status").addEventListener("change", refresh);
  $("f-route").addEventListener("change", refresh);
  let typing = null;
  $("f-id").addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(refresh, 250); });
  $("detail-close").addEventListener("click", () => {
    $("detail").hidden = true;
    selectedId = null;
    for (const row of document.querySelectorAll("#recent tr.selected")) row.classList.remove("selected");
  });
  refresh();
})();
