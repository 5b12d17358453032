// Custodian ops page: signs an admin in, then shows the cluster, the outboxes
// and the jobs, refreshed every 2 s. Plain JS, no dependencies, same origin only.
//
// It shows no personal data: job ids, counts, service and node names only. A
// job's `user_id` (export and register jobs carry one) is never read.
//
// Hooks for tests (tests/ops/ui_check.py):
//   #nodes tr[data-node][data-alive="true|false"]
//   #outbox tr[data-origin][data-dest]
//   #job-counts td[data-kind][data-state]
//   #running-jobs tr[data-job][data-kind][data-pending="svc svc"]
//     .badge[data-service][data-status="pending|done|failed"]
//   #oldest-erasure[data-job]   (empty when there is none)
"use strict";

(function () {
  const REFRESH_MS = 2000;
  const FETCH_TIMEOUT_MS = 8000;
  const JOB_PAGE = 100;
  const COUNT_PAGES = 5;        // counts cover the newest COUNT_PAGES * JOB_PAGE jobs
  const RUNNING_PAGES = 10;     // running jobs come newest first: the oldest are on the last page
  const MAX_RUNNING_ROWS = 200;
  const TOKEN_KEY = "custodian.ops.session";

  const $ = (id) => document.getElementById(id);

  // ---------- session ----------

  let session = null;           // {token, expires_at_ms}
  let timer = null;
  let generation = 0;           // bumps on sign-in/out so stale refreshes are dropped

  function loadSession() {
    try {
      const s = JSON.parse(sessionStorage.getItem(TOKEN_KEY) || "null");
      if (s && typeof s.token === "string" && s.token) return s;
    } catch (_) { /* ignore */ }
    return null;
  }
  function saveSession(s) {
    try { sessionStorage.setItem(TOKEN_KEY, JSON.stringify(s)); } catch (_) { /* private mode */ }
  }
  function clearSession() {
    session = null;
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (_) { /* ignore */ }
  }

  class ApiError extends Error {
    // said: the node's own sentence ({"error": "..."}), when it gave one
    constructor(status, message, said) { super(message); this.status = status; this.said = said || ""; }
  }

  async function api(method, path, body, token) {
    if (token === undefined) token = session ? session.token : "";
    const headers = { "Accept": "application/json" };
    if (token) headers["Authorization"] = "Bearer " + token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const ctl = new AbortController();
    const t = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
    let res;
    try {
      res = await fetch(path, {
        method, headers, signal: ctl.signal, cache: "no-store", credentials: "omit",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, e && e.name === "AbortError"
        ? "the node did not answer within " + FETCH_TIMEOUT_MS / 1000 + " s"
        : "cannot reach the node");
    } finally {
      clearTimeout(t);
    }
    let data = null;
    const text = await res.text().catch(() => "");
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = null; }
    }
    if (!res.ok) {
      const said = data && typeof data.error === "string" ? data.error : "";
      let msg = said || "HTTP " + res.status;
      if (res.status === 429) {
        const ra = res.headers.get("Retry-After");
        if (ra && !/retry/i.test(msg)) msg += "; retry in " + ra + " s";
      }
      throw new ApiError(res.status, msg, said);
    }
    return data || {};
  }

  // ---------- formatting ----------

  function num(v) {            // int64 fields arrive as strings; absent means 0
    const n = Number(v);
    return Number.isFinite(n) ? n : 0;
  }
  function arr(v) { return Array.isArray(v) ? v : []; }
  function str(v) { return typeof v === "string" ? v : v == null ? "" : String(v); }

  function age(ms) {
    ms = Math.max(0, ms);
    const s = ms / 1000;
    if (s < 10) return s.toFixed(1) + " s";
    if (s < 60) return Math.floor(s) + " s";
    const m = s / 60;
    if (m < 10) return Math.floor(m) + " min" + (Math.floor(s % 60) ? " " + Math.floor(s % 60) + " s" : "");
    if (m < 60) return Math.floor(m) + " min";
    const h = m / 60;
    if (h < 48) return (h < 10 ? h.toFixed(1) : Math.floor(h)) + " h";
    return Math.floor(h / 24) + " d";
  }
  function sentence(s) { s = str(s).trim(); return s ? s[0].toUpperCase() + s.slice(1) + (/[.!?]$/.test(s) ? "" : ".") : s; }
  function clock(d) {
    const p = (n) => String(n).padStart(2, "0");
    return p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds());
  }
  function ranges(list) {      // [0,1,2,5,7,8] -> "0–2, 5, 7–8"
    const xs = [...new Set(list.map(num))].sort((a, b) => a - b);
    const out = [];
    for (let i = 0; i < xs.length; ) {
      let j = i;
      while (j + 1 < xs.length && xs[j + 1] === xs[j] + 1) j++;
      out.push(j > i ? xs[i] + "–" + xs[j] : String(xs[i]));
      i = j + 1;
    }
    return out.join(", ");
  }

  // Small DOM builder: el("td", {class: "x", data: {node: "a"}}, child, "text", ...)
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === "data") for (const [dk, dv] of Object.entries(v)) e.dataset[dk] = dv;
      else if (k === "class") e.className = v;
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c == null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  function badge(text, kind, data) { return el("span", { class: "badge badge-" + kind, data }, text); }
  function setRows(table, rows, emptyText, cols) {
    const tbody = table.tBodies[0];
    if (!rows.length) rows = [el("tr", { class: "empty" }, el("td", { colspan: cols }, emptyText))];
    tbody.replaceChildren(...rows);
  }

  // ---------- views ----------

  function showLogin(message) {
    generation++;
    if (timer) { clearTimeout(timer); timer = null; }
    $("dashboard").hidden = true;
    $("session-info").hidden = true;
    $("login-view").hidden = false;
    const err = $("login-error");
    err.textContent = message || "";
    err.hidden = !message;
    $("password").value = "";
    $("login-submit").disabled = false;
    ($("email").value ? $("password") : $("email")).focus();
  }

  function showDashboard() {
    $("login-view").hidden = true;
    $("login-error").hidden = true;
    $("dashboard").hidden = false;
    $("session-info").hidden = false;
    $("updated").textContent = "loading…";
    $("refresh-error").hidden = true;
    for (const id of ["nodes", "outbox", "running-jobs", "leases", "fenced-writes"])
      $(id).tBodies[0].replaceChildren();
    $("job-counts").tBodies[0].replaceChildren();
    $("oldest-erasure").textContent = "Oldest pending erasure: …";
    delete $("oldest-erasure").dataset.job;
    const g = ++generation;
    refresh(g);
  }

  function authFailure(e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
      clearSession();
      showLogin(e.status === 403 ? "This account is not an admin."
        : "Signed out: " + (e.said || "the node refused the session") + ".");
      return true;
    }
    return false;
  }

  // ---------- cluster ----------

  function renderCluster(c, now) {
    $("node-name").textContent = str(c.node) || "?";
    const nodes = arr(c.nodes).slice().sort((a, b) =>
      (b.self === true) - (a.self === true) || str(a.name).localeCompare(str(b.name)));

    let alive = 0;
    const rows = nodes.map((n) => {
      const up = n.alive === true;
      if (up) alive++;
      const seen = num(n.last_seen_ms);
      const services = arr(n.services).map((s) => {
        const shards = arr(s.shards);
        return el("span", { class: "svc", title: shards.length ? "shards " + ranges(shards) : "no shards" },
          str(s.service), el("span", { class: "svc-shards" }, " ×" + shards.length));
      });
      const failed = arr(n.failed_services).map((f) =>
        badge(typeof f === "string" ? f : str(f && (f.service || f.name)), "failed"));
      return el("tr", { class: up ? "" : "row-down", data: { node: str(n.name), alive: String(up) } },
        el("td", {}, el("code", {}, str(n.name)), n.self === true ? el("span", { class: "self-tag" }, "this node") : null),
        el("td", {}, str(n.address) ? el("code", { class: "muted" }, str(n.address)) : el("span", { class: "muted" }, "—")),
        el("td", {}, up ? badge("alive", "alive") : badge("down", "down")),
        el("td", { class: "num" }, n.self === true && up ? "now" : seen > 0 ? age(now - seen) + " ago" : "never"),
        el("td", { class: "svcs" }, services.length ? services : el("span", { class: "muted" }, "—")),
        el("td", {}, failed.length ? failed : el("span", { class: "muted" }, "—")));
    });
    setRows($("nodes"), rows, "No nodes reported.", 6);
    const sn = $("stat-nodes");
    sn.textContent = nodes.length ? alive + " / " + nodes.length : "–";
    sn.className = "stat-value" + (alive < nodes.length ? " bad" : "");

    const outbox = arr(c.outbox).slice().sort((a, b) => num(b.oldest_age_ms) - num(a.oldest_age_ms));
    let depth = 0;
    const orows = outbox.map((o) => {
      const d = num(o.depth);
      depth += d;
      const a = num(o.oldest_age_ms);
      return el("tr", { data: { origin: str(o.origin), dest: str(o.dest) } },
        el("td", {}, el("code", {}, str(o.origin)), el("span", { class: "arrow" }, " → "),
          el("code", {}, str(o.dest))),
        el("td", { class: "num" }, d.toLocaleString("en-US")),
        el("td", { class: "num" + (a >= 60000 ? " warn" : "") }, d > 0 ? age(a) : "—"));
    });
    setRows($("outbox"), orows, "Empty: every message has been delivered.", 3);
    $("stat-outbox").textContent = depth.toLocaleString("en-US") + (depth === 1 ? " message" : " messages");
    const oldest = num(c.oldest_pending_age_ms);
    const so = $("stat-oldest-msg");
    so.textContent = oldest > 0 ? age(oldest) : "none";
    so.className = "stat-value" + (oldest >= 60000 ? " warn" : "");

    const leases = arr(c.leases), fenced = arr(c.fenced_writes);
    $("leases-card").hidden = !leases.length && !fenced.length;
    // One row per (service, owner): the shards it holds, the highest fencing
    // epoch and the lease that runs out first (negative: expired).
    const groups = new Map();
    for (const l of leases) {
      const key = str(l.service) + "\u0000" + str(l.owner);
      const g = groups.get(key) || { service: str(l.service), owner: str(l.owner), shards: [], epoch: 0, left: Infinity };
      g.shards.push(num(l.shard));
      g.epoch = Math.max(g.epoch, num(l.epoch));
      g.left = Math.min(g.left, num(l.expires_in_ms));
      groups.set(key, g);
    }
    const lrows = [...groups.values()]
      .sort((a, b) => a.service.localeCompare(b.service) || a.owner.localeCompare(b.owner))
      .map((g) => el("tr", { data: { service: g.service, owner: g.owner } },
        el("td", {}, el("code", {}, g.service)),
        el("td", {}, el("code", {}, g.owner || "—")),
        el("td", {}, ranges(g.shards)),
        el("td", { class: "num" }, String(g.epoch)),
        el("td", { class: "num" + (g.left < 0 ? " bad" : "") },
          g.left < 0 ? "expired " + age(-g.left) + " ago" : age(g.left))));
    setRows($("leases"), lrows, "No leases.", 5);
    setRows($("fenced-writes"), fenced.map((f) =>
      el("tr", { data: { service: str(f.service) } },
        el("td", {}, el("code", {}, str(f.service))),
        el("td", { class: "num" + (num(f.count) > 0 ? " warn" : "") }, String(num(f.count))),
        el("td", { class: "num" + (num(f.late_applies) > 0 ? " warn" : "") }, String(num(f.late_applies))))),
    "None.", 3);
  }

  // ---------- jobs ----------

  // A job-holding service some of whose shards did not answer: its jobs may be missing.
  function showUnreachable(id, services) {
    const w = $(id);
    w.hidden = !services.length;
    w.textContent = services.length
      ? "Incomplete: " + services.join(", ") + " did not answer for every shard; "
        + (services.length === 1 ? "its" : "their") + " jobs may be missing."
      : "";
  }

  async function jobPages(query, maxPages) {
    const jobs = [], unreachable = new Set();
    let after = null, more = false;
    for (let page = 0; page < maxPages; page++) {
      let path = "/v1/jobs?limit=" + JOB_PAGE + query;
      if (after) path += "&after=" + encodeURIComponent(after);
      const r = await api("GET", path);
      jobs.push(...arr(r.jobs));
      for (const u of arr(r.unreachable)) unreachable.add(str(u));
      after = str(r.next);
      more = !!after;
      if (!more || !arr(r.jobs).length) break;
    }
    return { jobs, more, unreachable: [...unreachable].sort() };
  }

  const KINDS = ["register", "erase", "export"];
  const STATES = ["running", "done", "failed"];

  function renderCounts(all) {
    const kinds = [...KINDS], states = [...STATES];
    const counts = {};
    for (const j of all.jobs) {
      const k = str(j.kind) || "unknown", s = str(j.state) || "unknown";
      if (!kinds.includes(k)) kinds.push(k);
      if (!states.includes(s)) states.push(s);
      counts[k + "/" + s] = (counts[k + "/" + s] || 0) + 1;
    }
    const t = $("job-counts");
    t.tHead.rows[0].replaceChildren(el("th", {}, "Kind"),
      ...states.map((s) => el("th", { class: "num" }, s)), el("th", { class: "num" }, "total"));
    const totals = {};
    const rows = kinds.map((k) => {
      let rowTotal = 0;
      const cells = states.map((s) => {
        const n = counts[k + "/" + s] || 0;
        rowTotal += n;
        totals[s] = (totals[s] || 0) + n;
        const cls = "num" + (n === 0 ? " zero" : s === "failed" ? " bad" : s === "running" ? " warn" : "");
        return el("td", { class: cls, data: { kind: k, state: s } }, String(n));
      });
      return el("tr", { data: { kind: k } }, el("th", { scope: "row" }, k), cells,
        el("td", { class: "num total" }, String(rowTotal)));
    });
    rows.push(el("tr", { class: "totals" }, el("th", { scope: "row" }, "all"),
      states.map((s) => el("td", { class: "num" }, String(totals[s] || 0))),
      el("td", { class: "num total" }, String(all.jobs.length))));
    t.tBodies[0].replaceChildren(...rows);
    $("job-counts-note").textContent = all.more
      ? "newest " + all.jobs.length + " jobs"
      : all.jobs.length + " jobs";
    showUnreachable("job-counts-warn", all.unreachable);
  }

  function renderRunning(run, now) {
    const jobs = run.jobs.filter((j) => str(j.state || "running") === "running")
      .sort((a, b) => num(a.accepted_ms) - num(b.accepted_ms));
    const shown = jobs.slice(0, MAX_RUNNING_ROWS);
    const rows = shown.map((j) => {
      const svc = j.services && typeof j.services === "object" ? j.services : {};
      const names = Object.keys(svc).sort();
      const pending = names.filter((n) => str(svc[n]) === "pending");
      const order = { failed: 0, pending: 1, done: 2 };
      names.sort((a, b) => (order[str(svc[a])] ?? 3) - (order[str(svc[b])] ?? 3) || a.localeCompare(b));
      const acc = num(j.accepted_ms);
      return el("tr", { data: { job: str(j.job_id), kind: str(j.kind), pending: pending.join(" ") } },
        el("td", {}, el("code", { class: "job-id" }, str(j.job_id))),
        el("td", {}, str(j.kind)),
        el("td", { class: "num" }, acc > 0 ? age(now - acc) : "—"),
        el("td", { class: "badges" }, names.map((n) => {
          const st = str(svc[n]);
          const kind = st === "done" ? "done" : st === "failed" ? "failed" : "pending";
          return badge(n, kind, { service: n, status: st });
        })),
        el("td", {}, pending.length ? el("strong", {}, pending.join(", ")) : el("span", { class: "muted" }, "—")));
    });
    setRows($("running-jobs"), rows, "No running jobs.", 5);
    const hidden = jobs.length - shown.length;
    $("running-note").textContent = "oldest first" + (hidden > 0 ? "; " + hidden + " more not shown" : "")
      + (run.more ? "; more than " + jobs.length + " running" : "");
    $("stat-running").textContent = jobs.length + (run.more ? "+" : "");
    showUnreachable("running-warn", run.unreachable);

    const oe = $("oldest-erasure");
    const erase = jobs.filter((j) => str(j.kind) === "erase");
    oe.replaceChildren("Oldest pending erasure: ");
    if (!erase.length) {
      oe.append(el("span", { class: "muted" }, "none"));
      oe.dataset.job = "";
      oe.className = "oldest-erasure";
      return;
    }
    const o = erase[0];                       // sorted by accepted_ms, oldest first
    const acc = num(o.accepted_ms);
    oe.append(...[el("code", { class: "job-id" }, str(o.job_id)), " — ",
      el("strong", {}, acc > 0 ? age(now - acc) : "age unknown"),
      run.more ? el("span", { class: "muted" }, " (of the newest " + run.jobs.length + " running jobs; older ones not fetched)") : null].filter((x) => x != null));
    oe.dataset.job = str(o.job_id);
    oe.className = "oldest-erasure" + (acc > 0 && now - acc >= 3600000 ? " bad" : " pending");
  }

  // ---------- refresh loop ----------

  async function refresh(g) {
    if (!session) return;
    if (session.expires_at_ms && Date.now() >= num(session.expires_at_ms)) {
      clearSession();
      return showLogin("Your session expired; sign in again.");
    }
    const results = await Promise.allSettled([
      api("GET", "/v1/cluster"),
      jobPages("", COUNT_PAGES),
      jobPages("&state=running", RUNNING_PAGES),
    ]);
    if (g !== generation) return;             // signed out or in again meanwhile
    for (const r of results)
      if (r.status === "rejected" && authFailure(r.reason)) return;

    const now = Date.now();
    const errors = [];
    const what = ["cluster", "job counts", "running jobs"];
    const render = [
      (v) => renderCluster(v, now),
      (v) => renderCounts(v),
      (v) => renderRunning(v, now),
    ];
    results.forEach((r, i) => {
      if (r.status === "fulfilled") {
        try { render[i](r.value); } catch (e) { errors.push(what[i] + ": cannot show the answer (" + e.message + ")"); }
      } else {
        errors.push(what[i] + ": " + (r.reason && r.reason.message ? r.reason.message : "failed"));
      }
    });

    const banner = $("refresh-error");
    if (errors.length) {
      const last = $("updated").dataset.at;
      banner.replaceChildren(el("strong", {}, "Refresh failed"),
        " — " + errors.join("; ") + (last ? ". Showing data from " + last + "." : "."));
      banner.hidden = false;
      $("updated").classList.add("stale");
    } else {
      banner.hidden = true;
      const at = clock(new Date(now));
      $("updated").dataset.at = at;
      $("updated").textContent = "updated at " + at;
      $("updated").classList.remove("stale");
    }
    if (!$("updated").dataset.at) $("updated").textContent = "not updated yet";
    timer = setTimeout(() => refresh(g), REFRESH_MS);
  }

  // ---------- events ----------

  async function onLogin(ev) {
    ev.preventDefault();
    const email = $("email").value.trim(), password = $("password").value;
    const err = $("login-error");
    if (!email || !password) {
      err.textContent = "Enter the email and the password.";
      err.hidden = false;
      return;
    }
    $("login-submit").disabled = true;
    err.hidden = true;
    clearSession();
    try {
      const r = await api("POST", "/v1/sessions", { email, password });
      if (!r.token) throw new ApiError(0, "the node answered without a token");
      session = { token: str(r.token), expires_at_ms: str(r.expires_at_ms) };
      saveSession(session);
      $("password").value = "";
      showDashboard();
    } catch (e) {
      const msg = e.status === 401 ? (e.said ? sentence(e.said) : "Wrong email or password.")
        : e.status === 429 ? (e.said ? sentence(e.message) : "Too many failed sign-ins; try again later.")
        : "Sign-in failed: " + e.message;
      showLogin(msg);
    } finally {
      $("login-submit").disabled = false;
    }
  }

  async function onSignout() {
    const s = session;
    clearSession();
    showLogin("");
    // Revoke the token on the node, best effort.
    if (s) await api("DELETE", "/v1/sessions", undefined, s.token).catch(() => {});
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", onLogin);
    $("signout").addEventListener("click", onSignout);
    session = loadSession();
    if (session) showDashboard(); else showLogin("");
  });
})();
