// Custodian privacy page: a person signs in (password, or the organisation's
// OpenID Connect provider with PKCE), sees what every service holds about them,
// downloads it, and deletes their account with a signed certificate at the end.
// Plain JS, no dependencies, same origin only; words and layout in format.js.
// The token lives in sessionStorage (this tab only); after an erasure the page
// keeps nothing of the person.
//
// Hooks for tests (tests/ops/privacy_check.py):
//   #export-sections section[data-service]       one per service of the export
//   #preview-list li[data-service][data-method]   the erase preview
//   #erase-services li[data-service][data-status] progress; #erase-view[data-state]
//   #cert-verify[data-verified="true|false"]
"use strict";

(function () {
  const FETCH_TIMEOUT_MS = 10000;
  const EXPORT_POLL_MS = 700, EXPORT_GIVE_UP_MS = 120000;
  const ERASE_POLL_MS = 1000, ERASE_POLL_SLOW_MS = 10000;
  const SESSION_CHECK_MS = 30000;
  const SESSION_KEY = "custodian.privacy.session";
  const PKCE_KEY = "custodian.privacy.oidc";
  const ERASE_KEY = "custodian.privacy.erase";
  const REDIRECT_URI = location.origin + "/privacy/";

  const { arr, str, isObject, sentence, when, serviceName, byOrder, el, b64url, unb64url,
    sectionBody, previewItem, howErased } = window.PrivacyFormat;
  const $ = (id) => document.getElementById(id);
  const channel = "BroadcastChannel" in window ? new BroadcastChannel("custodian.privacy") : null;

  let session = null;       // {token, kind: "password"|"provider", user_id, expires_at_ms}
  let bundle = null;        // the last export, in memory only
  let oidc = null;          // GET /v1/oidc's answer, when the node has a provider
  let generation = 0;       // bumps on every sign-in/out: late answers of an older one are dropped
  let timers = [];
  const objectUrls = new Set();

  // ---------- storage ----------

  function stored(key) {
    try { return JSON.parse(sessionStorage.getItem(key) || "null"); } catch (_) { return null; }
  }
  function store(key, value) {
    try { sessionStorage.setItem(key, JSON.stringify(value)); } catch (_) { /* private mode */ }
  }
  function unstore(key) {
    try { sessionStorage.removeItem(key); } catch (_) { /* ignore */ }
  }

  // Forgets everything of the person: token, export, preview, downloads, storage.
  function wipe() {
    generation++;
    session = null;
    bundle = null;
    timers.forEach(clearTimeout);
    timers = [];
    objectUrls.forEach((u) => URL.revokeObjectURL(u));
    objectUrls.clear();
    $("export-sections").replaceChildren();
    $("export-about").textContent = "";
    $("export-result").hidden = true;
    $("preview-list").replaceChildren();
    $("preview").hidden = true;
    $("confirm-check").checked = false;
    for (const id of ["export-status", "preview-status"]) $(id).textContent = "";
    for (const id of ["confirm-error", "signin-error", "oidc-error"]) $(id).hidden = true;
    for (const id of ["export-start", "preview-start", "confirm-submit", "signin-submit"]) $(id).disabled = false;
    $("email").value = "";
    $("password").value = "";
    try { sessionStorage.clear(); localStorage.clear(); } catch (_) { /* ignore */ }
  }

  function later(fn, ms) {
    const t = setTimeout(() => { timers = timers.filter((x) => x !== t); fn(); }, ms);
    timers.push(t);
  }
  const sleep = (ms) => new Promise((resolve) => later(resolve, ms));

  // ---------- the node's API ----------

  class ApiError extends Error {
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
        ? "the service did not answer in time" : "the service cannot be reached");
    } finally {
      clearTimeout(t);
    }
    const text = await res.text().catch(() => "");
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    if (!res.ok) {
      const said = data && typeof data.error === "string" ? data.error : "";
      let msg = said || "error " + res.status;
      const wait = res.headers.get("Retry-After");
      if (res.status === 429 && wait) msg = "too many tries; wait " + wait + " seconds and try again";
      throw new ApiError(res.status, msg, said);
    }
    return data || {};
  }

  // A call with the person's token: a refused token (401, 403) signs the page out.
  async function call(method, path, body) {
    const g = generation;
    try {
      return await api(method, path, body);
    } catch (e) {
      if ((e.status === 401 || e.status === 403) && g === generation) signedOut("You are signed out.");
      throw e;
    }
  }
  const refused = (e) => e instanceof ApiError && (e.status === 401 || e.status === 403);

  // ---------- views ----------

  function showView(id) {
    for (const v of ["signin-view", "account-view", "erase-view"]) $(v).hidden = v !== id;
    $("signout").hidden = id !== "account-view";
    const h = $(id).querySelector("h1");
    if (h) h.focus();
  }
  function notice(text, bad) {
    $("notice").textContent = text || "";
    $("notice").classList.toggle("notice-bad", !!bad);
  }
  function formError(id, text) {
    $(id).textContent = text || "";
    $(id).hidden = !text;
  }

  function showSignin(message, bad) {
    showView("signin-view");
    notice(message, bad);
    $("oidc-box").hidden = !oidc;
    $("signin-submit").disabled = false;
  }

  function signedOut(message) {
    wipe();
    showSignin(message);
  }

  function startSession(s) {
    wipe();
    session = s;
    store(SESSION_KEY, s);
    showAccount();
  }

  function showAccount() {
    const ended = "Your session ended. Sign in again to continue.";
    const left = Number(session.expires_at_ms) - Date.now();
    if (left <= 0) return signedOut(ended);
    notice("");
    showView("account-view");
    const g = generation;
    if (left < 2147483647) later(() => { if (g === generation) signedOut(ended); }, left);
    const tick = () => later(async () => { await checkSession(); if (g === generation) tick(); }, SESSION_CHECK_MS);
    tick();
  }

  // Is the token still taken? A stale tab (signed out or erased elsewhere) finds out here.
  async function checkSession() {
    if (!session) return;
    try {
      const who = await call("GET", "/v1/session");
      if (session && who.user_id && who.user_id !== session.user_id) signedOut("You are signed out.");
    } catch (_) { /* refused: call() signed out; unreachable: try again later */ }
  }

  // ---------- signing in ----------

  async function onPasswordSignin(ev) {
    ev.preventDefault();
    const email = $("email").value.trim(), password = $("password").value;
    if (!email || !password) return formError("signin-error", "Enter your email and your password.");
    formError("signin-error", "");
    $("signin-submit").disabled = true;
    notice("Signing you in…");
    try {
      const r = await api("POST", "/v1/sessions", { email, password }, "");
      startSession({
        token: str(r.token), kind: "password", user_id: str(r.user_id), expires_at_ms: str(r.expires_at_ms),
      });
    } catch (e) {
      notice("");
      $("password").value = "";
      formError("signin-error", e.status === 401 ? "That email and password do not match an account."
        : e.status === 429 ? sentence(e.message) : "Signing in did not work: " + e.message + ".");
      $("password").focus();
    } finally {
      $("signin-submit").disabled = false;
    }
  }

  const randomText = (n) => b64url(crypto.getRandomValues(new Uint8Array(n)));

  async function loadOidc() {
    try {
      const r = await api("GET", "/v1/oidc", undefined, "");
      if (r.authorization_endpoint && r.client_id) oidc = r;
    } catch (_) { oidc = null; /* 404: no provider for this page */ }
    if (!$("signin-view").hidden) $("oidc-box").hidden = !oidc;
  }

  // Authorization code with PKCE: the verifier and state wait in sessionStorage for the way back.
  async function onProviderSignin() {
    if (!oidc) return;
    if (!window.crypto || !crypto.subtle) {
      return formError("oidc-error", "Signing in with your organisation needs a secure (https) connection to this page.");
    }
    const verifier = randomText(32), state = randomText(16);
    const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
    store(PKCE_KEY, { verifier, state });
    const q = new URLSearchParams({
      response_type: "code", client_id: oidc.client_id, redirect_uri: REDIRECT_URI,
      scope: "openid email", state, code_challenge: challenge, code_challenge_method: "S256",
    });
    if (oidc.audience) q.set("audience", oidc.audience);  // Hydra, Auth0 mint per audience
    const sep = oidc.authorization_endpoint.includes("?") ? "&" : "?";
    location.assign(oidc.authorization_endpoint + sep + q.toString().replace(/\+/g, "%20"));
  }

  async function finishProviderSignin(q) {
    const saved = stored(PKCE_KEY);
    unstore(PKCE_KEY);
    history.replaceState(null, "", location.pathname);
    if (q.get("error")) {
      return showSignin("Signing in with your organisation did not work: "
        + sentence(q.get("error_description") || q.get("error")), true);
    }
    if (!saved || !q.get("state") || saved.state !== q.get("state")) {
      return showSignin("That sign-in could not be checked (it was started in another tab, or is too old). Try again.", true);
    }
    showSignin("Signing you in…");
    try {
      const t = await api("POST", "/v1/oidc/token",
        { code: q.get("code") || "", code_verifier: saved.verifier, redirect_uri: REDIRECT_URI }, "");
      const token = str(t.access_token);
      const who = await providerAccount(token);
      const ends = Date.now() + (Number(t.expires_in) || 3600) * 1000;
      startSession({ token, kind: "provider", user_id: str(who.user_id),
        expires_at_ms: String(Math.min(ends, Number(who.expires_at_ms) || ends)) });
    } catch (e) {
      showSignin("Signing in with your organisation did not work: " + sentence(e.message), true);
    }
  }

  // Who the provider's token is. Looking never creates an account: a person
  // without one is told that nothing is held about them here.
  async function providerAccount(token) {
    try {
      return usable(await api("GET", "/v1/session", undefined, token));
    } catch (e) {
      if (e.status === 403 && /not registered/i.test(e.said))
        throw new ApiError(0, "we hold no account for this sign-in, so nothing about you is stored here");
      throw e;
    }
  }
  function usable(who) {
    if (!who.user_id) throw new ApiError(0, "this sign-in belongs to an operator, not to a person's account");
    return who;
  }

  async function onSignout() {
    const s = session;
    signedOut(s && s.kind === "provider"
      ? "You are signed out here. You may still be signed in at your organisation."
      : "You are signed out.");
    if (channel) channel.postMessage("check");
    if (s && s.kind === "password") await api("DELETE", "/v1/sessions", undefined, s.token).catch(() => {});
  }

  // ---------- what we hold about you ----------

  async function onExport() {
    const g = generation;
    const status = (t) => { if ($("export-status").textContent !== t) $("export-status").textContent = t; };
    $("export-start").disabled = true;
    status("Gathering your data…");
    try {
      const job = await call("POST", "/v1/users/" + session.user_id + "/export", {});
      const started = Date.now();
      for (;;) {
        const j = await call("GET", "/v1/jobs/" + job.job_id);
        if (g !== generation) return;
        const svc = isObject(j.services) ? Object.values(j.services) : [];
        if (j.state === "done" && isObject(j.bundle)) return showBundle(j.bundle);
        if (j.state === "failed") {
          throw new ApiError(0, "not every service could answer (" + str(j.error || "no reason given") + ")");
        }
        if (Date.now() - started > EXPORT_GIVE_UP_MS) throw new ApiError(0, "it is taking too long");
        const ready = svc.filter((s) => s === "done").length;
        status("Gathering your data… " + ready + " of " + svc.length + " services ready.");
        await sleep(EXPORT_POLL_MS);
        if (g !== generation) return;
      }
    } catch (e) {
      if (g === generation && !refused(e)) {
        status("We could not gather your data: " + e.message + ". Try again in a moment.");
      }
    } finally {
      if (g === generation) $("export-start").disabled = false;
    }
  }

  function showBundle(b) {
    bundle = b;
    const names = Object.keys(b).filter((k) => k !== "metadata").sort(byOrder);
    $("export-sections").replaceChildren(...names.map((n) =>
      el("section", { class: "svc-section", data: { service: n }, "aria-labelledby": "svc-" + n },
        el("h3", { id: "svc-" + n }, serviceName(n)), sectionBody(b[n], n))));
    const meta = isObject(b.metadata) ? b.metadata : {};
    const none = isObject(meta.holds_no_personal_data) ? Object.keys(meta.holds_no_personal_data) : [];
    $("export-about").textContent = "Gathered " + when(meta.generated_ms) + " from " + names.length
      + (names.length === 1 ? " service" : " services") + " for account ID " + str(meta.user_id) + "."
      + (none.length ? " These hold nothing about you: " + none.map(serviceName).join(", ") + "." : "");
    $("export-result").hidden = false;
    $("export-status").textContent = "Done: here is what we hold about you.";
  }

  function download(name, value) {
    const url = URL.createObjectURL(new Blob([JSON.stringify(value, null, 2) + "\n"], { type: "application/json" }));
    objectUrls.add(url);
    const a = el("a", { href: url, download: name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => { URL.revokeObjectURL(url); objectUrls.delete(url); }, 1000);
  }
  const today = () => new Date().toISOString().slice(0, 10);

  // ---------- delete my account ----------

  async function onPreview() {
    const g = generation;
    $("preview-start").disabled = true;
    $("preview-status").textContent = "Asking each service…";
    try {
      const p = await call("GET", "/v1/users/" + session.user_id + "/erase-preview");
      if (g !== generation) return;
      const svc = isObject(p.services) ? p.services : {};
      $("preview-list").replaceChildren(...Object.keys(svc).sort(byOrder).map((n) => previewItem(n, svc[n] || {})));
      $("preview-status").textContent = "";
      $("preview").hidden = false;
      $("preview-title").focus();
    } catch (e) {
      if (g === generation && !refused(e)) {
        $("preview-status").textContent = "We could not ask every service: " + e.message + ". Try again in a moment.";
      }
    } finally {
      if (g === generation) $("preview-start").disabled = false;
    }
  }

  async function onConfirm(ev) {
    ev.preventDefault();
    if (!$("confirm-check").checked) {
      formError("confirm-error", "Tick the box first to confirm that you understand this cannot be undone.");
      return $("confirm-check").focus();
    }
    formError("confirm-error", "");
    $("confirm-submit").disabled = true;
    try {
      const r = await call("DELETE", "/v1/users/" + session.user_id);
      wipe();
      store(ERASE_KEY, { job_id: str(r.job_id) });   // no personal data: an erase job shows none
      if (channel) channel.postMessage("check");
      showErase(str(r.job_id));
    } catch (e) {
      if (e.status === 404) return signedOut("This account has already been deleted.");
      if (e.status === 0 || e.status === 504) {
        formError("confirm-error", "We could not tell whether your request arrived (" + e.message
          + "). Press the button again: asking twice is safe.");
      } else if (!refused(e)) {
        formError("confirm-error", "Your account could not be deleted: " + sentence(e.message)
          + " Nothing was deleted; try again.");
      }
    } finally {
      $("confirm-submit").disabled = false;
    }
  }

  // ---------- the erasure's progress ----------

  const STATUS_WORDS = { pending: "Waiting", done: "Deleted", failed: "Not finished yet" };

  function showErase(jobId) {
    $("erase-job").textContent = jobId;
    $("erase-services").replaceChildren();
    $("erase-status").textContent = "Your request has been received. Deleting your data…";
    $("erase-deadline").textContent = "–";
    $("cert").hidden = true;
    $("erase-finish").hidden = true;
    showView("erase-view");
    pollErase(jobId, generation);
  }

  async function pollErase(jobId, g) {
    for (;;) {
      let wait = ERASE_POLL_MS;
      try {
        const j = await api("GET", "/v1/jobs/" + jobId, undefined, "");   // readable by its id alone
        if (g !== generation) return;
        renderErase(j);
        if (j.state === "done") return eraseDone(jobId, g);
        if (j.state === "failed") wait = ERASE_POLL_SLOW_MS;
      } catch (e) {
        if (g !== generation) return;
        if (e.status === 404) {
          unstore(ERASE_KEY);
          return setText("erase-status", "We cannot find this request. Its number is shown below; contact us about it.");
        }
        setText("erase-status", "We cannot reach the service right now (" + e.message + "); we keep trying.");
      }
      await sleep(wait);
      if (g !== generation) return;
    }
  }
  function setText(id, text) { if ($(id).textContent !== text) $(id).textContent = text; }

  function renderErase(j) {
    const svc = isObject(j.services) ? j.services : {};
    const names = Object.keys(svc).sort(byOrder);
    const done = names.filter((n) => svc[n] === "done").length;
    const state = str(j.state);
    $("erase-view").dataset.state = state;
    $("erase-services").replaceChildren(...names.map((n) => {
      const st = str(svc[n]);
      return el("li", { data: { service: n, status: st } },
        el("span", { class: "svc-name" }, serviceName(n)),
        el("span", { class: "pill pill-" + (state === "held" ? "paused" : st) },
          state === "held" ? "Paused" : STATUS_WORDS[st] || st));
    }));
    setText("erase-status", {
      held: "Paused: your request is on hold for now. It will continue by itself; you do not need to do anything.",
      running: "Deleting your data: " + done + " of " + names.length + " services done.",
      done: "Every service has deleted your data. Your proof is below.",
      failed: "Deleting has not finished in every service yet. We have been alerted and will finish it; this page keeps checking.",
    }[state] || "Working on your request…");
    $("erase-status").className = "status status-big status-" + state;
    const finished = state === "done" && j.done_ms;
    $("erase-deadline-label").textContent = finished ? "Finished" : "To be finished by";
    $("erase-deadline").textContent = (finished ? when(j.done_ms) : when(j.deadline_ms))
      + (j.overdue === true ? (finished ? " (after the deadline)" : " (late)") : "")
      + (j.extended_ms && !finished ? " (extended)" : "");
  }

  async function eraseDone(jobId, g) {
    try { sessionStorage.clear(); localStorage.clear(); } catch (_) { /* ignore */ }
    if (channel) channel.postMessage("check");
    $("erase-title").textContent = "Your account has been deleted";
    $("erase-finish").hidden = false;
    $("cert").hidden = false;
    setText("cert-verify", "Checking the certificate’s signature…");
    for (let i = 0; ; i++) {
      try {
        const c = await api("GET", "/v1/jobs/" + jobId + "/certificate", undefined, "");
        if (g !== generation) return;
        return showCertificate(jobId, c);
      } catch (e) {
        if (g !== generation) return;
        if (e.status !== 409 || i >= 10) return verdict(false, "The certificate could not be fetched: " + sentence(e.message));
      }
      await sleep(1000);
    }
  }

  // ---------- the certificate ----------

  async function showCertificate(jobId, c) {
    let cert = null;
    try { cert = JSON.parse(new TextDecoder().decode(unb64url(c.certificate))); } catch (_) { cert = null; }
    if (!isObject(cert)) return verdict(false, "Not verified: the certificate cannot be read.");
    const file = { certificate: c.certificate, signature: c.signature, key_id: c.key_id, decoded: cert };
    $("cert-download").onclick = () => download("deletion-certificate-" + jobId.slice(0, 12) + ".json", file);
    const services = arr(cert.services).slice().sort((x, y) => byOrder(str(x.service), str(y.service)));
    $("cert-details").replaceChildren(
      el("dl", { class: "fields" },
        el("dt", {}, "Request received"), el("dd", {}, when(cert.accepted_ms)),
        el("dt", {}, "Finished"), el("dd", {}, when(cert.done_ms)),
        el("dt", {}, "Issued by"), el("dd", {}, str(cert.issuer) || "–")),
      el("div", { class: "table-wrap" }, el("table", { class: "records" },
        el("caption", {}, "What each service did"),
        el("thead", {}, el("tr", {}, ["Service", "How", "Checked"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, services.map((s) => el("tr", {},
          el("td", { data: { label: "Service" } }, serviceName(str(s.service))),
          el("td", { data: { label: "How" } }, howErased(s.method)),
          el("td", { data: { label: "Checked" } }, when(s.verified_ms))))))));
    if (cert.job_id !== jobId) return verdict(false, "Not verified: this certificate is for another request.");
    const v = await verifySignature(c);
    verdict(v.ok, v.text);
  }

  async function verifySignature(c) {
    if (!window.crypto || !crypto.subtle) {
      return { ok: false, text: "The signature cannot be checked here: this page needs a secure (https) connection"
        + " for that. Download the certificate to check it elsewhere." };
    }
    try {
      const keys = await api("GET", "/v1/keys", undefined, "");
      const k = arr(keys.keys).find((x) => x.key_id === c.key_id);
      if (!k) return { ok: false, text: "Not verified: no published key has the id " + str(c.key_id) + "." };
      if (k.alg !== "Ed25519") return { ok: false, text: "Not verified: key " + k.key_id + " is not an Ed25519 key." };
      const key = await crypto.subtle.importKey("raw", unb64url(k.public_key), { name: "Ed25519" }, false, ["verify"]);
      const good = await crypto.subtle.verify({ name: "Ed25519" }, key, unb64url(c.signature), unb64url(c.certificate));
      return good ? { ok: true, text: "Verified: signed by key " + k.key_id + "." }
        : { ok: false, text: "Not verified: the signature does not match the certificate." };
    } catch (e) {
      if (e && e.name === "NotSupportedError") {
        return { ok: false, text: "This browser cannot check this kind of signature (Ed25519)."
          + " Download the certificate to check it elsewhere." };
      }
      return { ok: false, text: "Not verified: " + sentence(e && e.message ? e.message : "the check failed") };
    }
  }

  function verdict(ok, text) {
    const v = $("cert-verify");
    v.textContent = text;
    v.dataset.verified = String(ok);
    v.className = "verify " + (ok ? "verify-ok" : "verify-bad");
  }

  function onFinish() {
    wipe();
    $("erase-title").textContent = "Deleting your account";
    $("cert-details").replaceChildren();
    $("cert-verify").textContent = "";
    $("cert-download").onclick = null;
    showSignin("Your account has been deleted. You are signed out.");
  }

  // ---------- start ----------

  function onMessage() {
    if (session) checkSession();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("signin-form").addEventListener("submit", onPasswordSignin);
    $("oidc-signin").addEventListener("click", onProviderSignin);
    $("signout").addEventListener("click", onSignout);
    $("export-start").addEventListener("click", onExport);
    $("export-download").addEventListener("click", () => {
      if (bundle) download("my-data-" + today() + ".json", bundle);
    });
    $("preview-start").addEventListener("click", onPreview);
    $("confirm-form").addEventListener("submit", onConfirm);
    $("erase-finish").addEventListener("click", onFinish);
    if (channel) channel.onmessage = onMessage;
    document.addEventListener("visibilitychange", () => { if (!document.hidden) onMessage(); });

    const oidcReady = loadOidc();
    const q = new URLSearchParams(location.search);
    const erase = stored(ERASE_KEY);
    session = stored(SESSION_KEY);
    if (q.has("code") || q.has("error")) oidcReady.then(() => finishProviderSignin(q));
    else if (erase && erase.job_id) showErase(str(erase.job_id));
    else if (session && session.token && session.user_id) { showAccount(); checkSession(); }
    else signedOut("");
  });
})();
