// What the privacy page says and how it lays it out: words for the services and
// their fields, dates and amounts, a small DOM builder, the tables of an export,
// and an erasure's preview and methods in plain words. No state, no requests;
// app.js uses it (loaded first, as window.PrivacyFormat).
"use strict";

window.PrivacyFormat = (function () {
  const arr = (v) => (Array.isArray(v) ? v : []);
  const str = (v) => (typeof v === "string" ? v : v == null ? "" : String(v));
  const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

  function sentence(s) {
    s = str(s).trim();
    return s ? s[0].toUpperCase() + s.slice(1) + (/[.!?]$/.test(s) ? "" : ".") : s;
  }
  function when(ms) {
    const n = Number(ms);
    if (!Number.isFinite(n) || n <= 0) return "–";
    return new Date(n).toLocaleString(undefined, { dateStyle: "long", timeStyle: "short" });
  }
  function duration(s) {
    const n = Number(s) || 0;
    const h = Math.floor(n / 3600), m = Math.floor((n % 3600) / 60), sec = n % 60;
    return [h ? h + " h" : "", m ? m + " min" : "", sec || (!h && !m) ? sec + " s" : ""].filter(Boolean).join(" ");
  }

  const SERVICES = {
    user: "Profile", auth: "Sign-in details", authz: "Roles and permissions",
    watchhistory: "What you watched", billing: "Billing and invoices",
  };
  const ORDER = ["user", "auth", "authz", "watchhistory", "billing"];
  const serviceName = (s) => SERVICES[s] || sentence(str(s).replace(/[_-]+/g, " ")).replace(/\.$/, "");
  const byOrder = (a, b) => ((ORDER.indexOf(a) + 1 || 99) - (ORDER.indexOf(b) + 1 || 99)) || a.localeCompare(b);

  const LABELS = {
    user_id: "Account ID", email: "Email", display_name: "Name", registered_ms: "Signed up",
    active_sessions: "Devices signed in", roles: "Roles", role: "Role", history: "Earlier versions",
    at_ms: "When", created_ms: "Created", updated_ms: "Last changed", events: "Titles you watched",
    title_id: "Title", progress_s: "Watched up to", subscription: "Subscription", plan: "Plan",
    billing_name: "Name on invoices", billing_address: "Billing address", since_ms: "Since",
    invoices: "Invoices", invoice_id: "Invoice number", amount_cents: "Amount", currency: "Currency",
    description: "Description", issued_ms: "Issued", billed_to: "Billed to",
    retention: "What the law makes us keep", record: "Record", kept_on_erasure: "Kept after deletion",
    basis: "Why", keep_until_ms: "Kept until", issuer: "Signed in through", subject: "Your ID there",
    accounts: "Accounts",
  };
  function label(key) {
    if (LABELS[key]) return LABELS[key];
    return sentence(str(key).replace(/_(ms|s)$/, "").replace(/_/g, " ")).replace(/\.$/, "");
  }

  // A field's value in words; `row` is the object holding it (for the currency of an amount).
  function show(key, value, row) {
    if (value == null || value === "") return "–";
    if (typeof value === "boolean") return value ? "Yes" : "No";
    if (/_ms$/.test(key)) return when(value);
    if (key === "progress_s") return duration(value);
    if (key === "amount_cents" && row && typeof row.currency === "string") {
      try {
        return (Number(value) / 100).toLocaleString(undefined, { style: "currency", currency: row.currency });
      } catch (_) { /* an unknown currency: plain number below */ }
    }
    if (key === "kept_on_erasure") return arr(value).map(label).join(", ");
    if (Array.isArray(value)) return value.every((v) => !isObject(v) && !Array.isArray(v))
      ? value.map(str).join(", ") : JSON.stringify(value);
    if (isObject(value)) return JSON.stringify(value);
    return str(value);
  }

  // Small DOM builder: el("td", {class: "x", data: {service: "a"}}, child, "text", ...)
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === "data") for (const [dk, dv] of Object.entries(v)) e.dataset[dk] = dv;
      else if (k === "class") e.className = v;
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat(Infinity)) {
      if (c == null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function b64url(bytes) {
    let s = "";
    for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function unb64url(text) {
    let s = str(text).replace(/-/g, "+").replace(/_/g, "/");
    s += "===".slice((s.length + 3) % 4);
    return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  }

  // An object: its plain fields as a list of terms, then a table per list of records
  // and a sub-heading per nested object.
  function renderObject(obj, level, id) {
    if (!isObject(obj)) return el("p", {}, show("", obj));
    const plain = [], parts = [];
    for (const [k, v] of Object.entries(obj)) {
      if (k === "user_id") continue;                 // the same everywhere: shown once, above
      if (Array.isArray(v) && v.length && v.every(isObject)) parts.push(renderTable(k, v));
      else if (isObject(v) && level <= 6) {
        parts.push(el("h" + level, { id: id + "-" + k }, label(k)), renderObject(v, level + 1, id + "-" + k));
      } else plain.push(el("dt", {}, label(k)), el("dd", {}, Array.isArray(v) && !v.length ? "None" : show(k, v, obj)));
    }
    return [plain.length ? el("dl", { class: "fields" }, plain) : null, ...parts];
  }

  function renderTable(key, rows) {
    const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
    return el("div", { class: "table-wrap" },
      el("table", { class: "records" },
        el("caption", {}, label(key) + " (" + rows.length + ")"),
        el("thead", {}, el("tr", {}, cols.map((c) => el("th", { scope: "col" }, label(c))))),
        el("tbody", {}, rows.map((r) => el("tr", {}, cols.map((c) =>
          el("td", { data: { label: label(c) }, class: /(^|_)id$|^record$/.test(c) ? "id" : null },
            show(c, r[c], r))))))));
  }

  // A service's section of the export; one that holds nothing says so.
  function sectionBody(obj, id) {
    const parts = [renderObject(obj, 4, id)].flat(Infinity).filter(Boolean);
    return parts.length ? parts : el("p", { class: "muted" }, "Nothing about you here.");
  }

  // What an erasure does in a service, by the preview's `method`.
  const METHODS = {
    "delete": "Everything it holds about you is deleted.",
    "crypto-erase": "Everything it holds about you is deleted, and the key that locks your data is destroyed.",
    "retain-pseudonymized": "Deleted, except records the law makes us keep, which stay without your name or anything that points to you.",
  };

  // One service's share of an erasure (GET /v1/users/{id}/erase-preview), in words.
  function previewItem(name, s) {
    const records = Number(s.records) || 0, method = str(s.method);
    let what;
    if (s.external === true) what = "This service is asked to delete everything it holds about you, and we check that it did.";
    else if (!records && !Number(s.keys)) what = "It holds nothing about you.";
    else what = METHODS[method] || METHODS.delete;
    const count = s.external === true ? null
      : el("span", { class: "muted" }, records === 1 ? " (1 record)" : " (" + records + " records)");
    return el("li", { data: { service: name, method: method || "delete" } },
      el("p", { class: "svc-name" }, el("strong", {}, serviceName(name)), count),
      el("p", {}, what),
      s.keeps ? el("p", { class: "keeps" }, el("strong", {}, "Kept, and why: "), sentence(s.keeps)) : null);
  }

  // How the certificate says a service erased.
  const HOW = {
    "crypto-erase": "Deleted; the key that locked your data destroyed",
    "retain-pseudonymized": "Deleted, except records the law makes us keep, no longer linked to you",
    "delete": "Deleted by the service",
  };
  const howErased = (method) => HOW[method] || str(method);

  return Object.freeze({
    arr, str, isObject, sentence, when, serviceName, byOrder, el,
    b64url, unb64url, sectionBody, previewItem, howErased,
  });
})();
