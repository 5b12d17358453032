#!/usr/bin/env python3
"""Browser check of the person's privacy page (privacy/) served by a node at /privacy/.

    privacy_check.py --url http://127.0.0.1:PORT --email E --password P \
                     --admin-token T --artifacts DIR [--timeout 120]
                     [--oidc-login-port N --hydra-admin URL --oidc-subject S]

Drives Debian's Chromium headless (Playwright, executable_path: no browser
download) at 390x844, with the keyboard only (Tab, Shift+Tab, Enter, Space and
typing; the mouse is never used), through a person's whole journey: the sign-in
view; signing in (and a second tab signed in too); "What we hold about you"
as tables; the JSON download (it must hold the person's email); the erase
preview (billing says what it keeps and why); the confirmation; the progress,
shown "paused" while a legal hold is placed through the API with --admin-token,
then released; the end, with the certificate verified in the page and
downloaded (and checked again here with Python's cryptography); then nothing of
the person left in the page or its storage, and the second tab turned to
"signed out". With --oidc-login-port, also a sign-in with the organisation's
provider (Ory Hydra, whose login and consent URLs point to
tests/ops/login_app.py, started here on that port as --oidc-subject).

Each step saves ARTIFACTS/privacy-<n>-<state>.png and prints one line. The
main states are scanned with axe-core (axe-playwright-python): a serious or
critical violation fails. Also failing: a console error other than the
expected HTTP answers (a 404 of /v1/oidc without a provider, a 401/403 of
/v1/session for a refused token), an error thrown in the page, any request to
another origin (but navigations to the provider and the login app on the
provider path), a page wider than the viewport, and the one overall deadline
(--timeout seconds). Exit 0 when every step passed, 1 otherwise.
"""
import argparse
import base64
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright
    from axe_playwright_python.sync_playwright import Axe
except ImportError as e:
    print(f"privacy_check: FAIL: {e.name} is not installed (pip install -r tests/ops/requirements.txt)")
    sys.exit(1)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import login_app  # noqa: E402

VIEWPORT = {"width": 390, "height": 844}
# HTTP errors the page causes on purpose; Chromium logs each as a console error.
EXPECTED_HTTP = {("/v1/oidc", 404), ("/v1/session", 401), ("/v1/session", 403)}


class CheckFailed(Exception):
    pass


def origin_of(url):
    u = urlsplit(url)
    return f"{u.scheme}://{u.netloc}"


class Check:
    def __init__(self, a):
        self.a = a
        self.base = a.url.rstrip("/")
        self.origin = origin_of(self.base)
        self.deadline = time.monotonic() + a.timeout
        self.shots = 0
        self.steps = 0
        self.console_errors, self.page_errors, self.offsite = [], [], []
        self.nav_origins = set()      # the provider's and the login app's, on the provider path
        self.axe = Axe()

    # ---------- plumbing ----------

    def left_ms(self):
        ms = (self.deadline - time.monotonic()) * 1000
        if ms <= 0:
            raise CheckFailed(f"the {self.a.timeout:g} s deadline passed")
        return ms

    def api(self, method, path, body=None, token=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if token:
            req.add_header("Authorization", "Bearer " + token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=min(10, self.left_ms() / 1000)) as r:
                text = r.read().decode()
                return r.status, json.loads(text) if text else {}
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, {"error": text}
        except (urllib.error.URLError, OSError) as e:
            raise CheckFailed(f"{method} {path}: cannot reach the node ({e})")

    def watch(self, page):
        page.set_default_timeout(30000)

        def on_console(msg):
            if msg.type != "error":
                return
            loc = (msg.location or {}).get("url", "")
            m = re.search(r"status of (\d{3})", msg.text)
            if m and (urlsplit(loc).path, int(m.group(1))) in EXPECTED_HTTP:
                return
            if urlsplit(loc).path == "/favicon.ico" or (loc and origin_of(loc) in self.nav_origins):
                return
            self.console_errors.append(f"{msg.text} ({loc})" if loc else msg.text)

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))

    def on_route(self, route):
        req = route.request
        if req.url.startswith(self.origin + "/"):
            return route.continue_()
        if req.is_navigation_request() and origin_of(req.url) in self.nav_origins:
            return route.continue_()
        self.offsite.append(req.url)
        route.abort()

    def new_context(self, browser):
        ctx = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        ctx.route("**/*", self.on_route)
        return ctx

    def step(self, name, fn, page):
        """Runs one step, then the common checks and a screenshot; prints one line."""
        self.steps += 1
        try:
            note = fn()
            self.common(page)
        except CheckFailed as e:
            self.shoot(page, f"FAILED-{name}")
            print(f"step {self.steps} {name}: FAIL: {e}", flush=True)
            raise
        except PlaywrightTimeout as e:
            self.shoot(page, f"FAILED-{name}")
            print(f"step {self.steps} {name}: FAIL: timed out ({str(e).splitlines()[0]})", flush=True)
            raise CheckFailed(f"step {name} timed out")
        path = self.shoot(page, name)
        print(f"step {self.steps} {name}: ok{': ' + note if note else ''} [{os.path.basename(path)}]", flush=True)

    def shoot(self, page, state):
        self.shots += 1
        path = os.path.join(self.a.artifacts, f"privacy-{self.shots:02d}-{state}.png")
        try:
            page.screenshot(path=path, full_page=True, timeout=10000)
        except PlaywrightError:
            pass
        return path

    def common(self, page):
        if self.page_errors:
            raise CheckFailed(f"the page threw: {self.page_errors[0]}")
        if self.console_errors:
            raise CheckFailed(f"console error: {self.console_errors[0]}")
        if self.offsite:
            raise CheckFailed(f"a request to another origin: {self.offsite[0]}")
        if urlsplit(page.url).netloc == urlsplit(self.origin).netloc:
            wide = page.evaluate("() => document.documentElement.scrollWidth")
            if wide > VIEWPORT["width"]:
                raise CheckFailed(f"the page is {wide} px wide at a {VIEWPORT['width']} px viewport")

    def scan(self, page, state):
        """axe-core: no serious or critical violation (lesser ones are printed, not failed)."""
        found = self.axe.run(page).response.get("violations", [])
        bad = [v for v in found if v.get("impact") in ("serious", "critical")]
        for v in found:
            targets = ", ".join(str(n.get("target")) for n in v.get("nodes", [])[:3])
            print(f"  axe ({state}): {v.get('impact')} {v['id']}: {v.get('help')} at {targets}", flush=True)
        if bad:
            raise CheckFailed(f"axe-core found {len(bad)} serious or critical violation(s) in {state}")
        return "axe: no violations" if not found else f"axe: {len(found)} lesser violation(s)"

    # ---------- the keyboard ----------

    def focused(self, page, selector):
        return page.evaluate("s => !!document.activeElement && document.activeElement.matches(s)", selector)

    def tab_to(self, page, selector, what, back=False):
        """Presses Tab (or Shift+Tab) until `selector` has the focus, which must be visible."""
        key = "Shift+Tab" if back else "Tab"
        for _ in range(80):
            if self.focused(page, selector):
                ring = page.evaluate("""() => { const e = document.activeElement, s = getComputedStyle(e);
                    return e.matches(':focus-visible') && s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2; }""")
                if not ring:
                    raise CheckFailed(f"{what} has the focus but shows no visible focus ring")
                return
            page.keyboard.press(key)
        raise CheckFailed(f"{what} ({selector}) cannot be reached with {key}")

    def type_into(self, page, selector, what, text):
        self.tab_to(page, selector, what)
        page.keyboard.type(text)

    def wait(self, page, js, explain, arg=None):
        try:
            page.wait_for_function(js, arg=arg, polling=150, timeout=self.left_ms())
        except PlaywrightTimeout:
            raise CheckFailed(explain() if callable(explain) else explain)

    def visible(self, page, selector):
        return page.evaluate("""s => { const e = document.querySelector(s);
            return !!e && !e.closest('[hidden]') && e.getClientRects().length > 0; }""", selector)

    def text(self, page, selector):
        return page.evaluate("s => (document.querySelector(s) || {}).innerText || ''", selector)

    def wait_visible(self, page, selector, what):
        self.wait(page, """s => { const e = document.querySelector(s);
            return !!e && !e.closest('[hidden]') && e.getClientRects().length > 0; }""",
                  lambda: f"{what} did not appear; the page says: \"{self.text(page, '#notice')}\"", selector)

    # ---------- the steps ----------

    def sign_in(self, page):
        page.goto(self.base + "/privacy/", wait_until="domcontentloaded", timeout=self.left_ms())
        self.wait_visible(page, "#signin-form", "the sign-in form")
        self.type_into(page, "#email", "the email field", self.a.email)
        self.type_into(page, "#password", "the password field", self.a.password)
        page.keyboard.press("Enter")
        self.wait_visible(page, "#account-view", "the signed-in view")
        if page.input_value("#password") != "":
            raise CheckFailed("the password stays in the form after signing in")

    def password_journey(self, browser):
        a = self.a
        status, login = self.api("POST", "/v1/sessions", {"email": a.email, "password": a.password})
        if status != 200:
            raise CheckFailed(f"the account {a.email} cannot sign in through the API: {status} {login}")
        user_id = login["user_id"]
        self.api("DELETE", "/v1/sessions", token=login["token"])
        ctx = self.new_context(browser)
        page = ctx.new_page()
        self.watch(page)

        def signed_out_view():
            resp = page.goto(self.base + "/privacy/", wait_until="domcontentloaded", timeout=self.left_ms())
            if resp is None or resp.status != 200:
                raise CheckFailed(f"/privacy/ answered {resp.status if resp else 'nothing'}")
            csp = resp.headers.get("content-security-policy", "")
            if "default-src 'self'" not in csp or resp.headers.get("x-content-type-options") != "nosniff":
                raise CheckFailed(f"/privacy/ lacks its headers (CSP \"{csp}\", nosniff)")
            self.wait_visible(page, "#signin-form", "the sign-in form")
            page.wait_for_timeout(300)          # GET /v1/oidc settles
            return "CSP and nosniff headers; " + self.scan(page, "sign-in view")
        self.step("signed-out", signed_out_view, page)

        def signed_in():
            self.type_into(page, "#email", "the email field", a.email)
            self.tab_to(page, "#password", "the password field")
            page.keyboard.type(a.password + "-wrong")
            page.keyboard.press("Enter")
            self.wait_visible(page, "#signin-error", "the wrong password's error")
            self.tab_to(page, "#password", "the password field", back=True)
            page.keyboard.type(a.password)
            page.keyboard.press("Enter")
            self.wait_visible(page, "#account-view", "the signed-in view")
            if page.input_value("#password") != "":
                raise CheckFailed("the password stays in the form after signing in")
            return "a wrong password first shows an error; the right one signs in; " + self.scan(page, "signed-in view")
        EXPECTED_HTTP.add(("/v1/sessions", 401))
        try:
            self.step("signed-in", signed_in, page)
        finally:
            EXPECTED_HTTP.discard(("/v1/sessions", 401))

        stale = ctx.new_page()
        self.watch(stale)
        self.step("second-tab-signed-in", lambda: self.sign_in(stale), stale)
        saved = stale.evaluate("() => Object.fromEntries(Object.entries(sessionStorage))")
        page.bring_to_front()

        self.step("what-we-hold", lambda: self.what_we_hold(page, a.email), page)
        self.step("download-json", lambda: self.download_json(page), page)
        self.step("erase-preview", lambda: self.preview(page), page)
        self.step("confirmation", lambda: self.confirm(page, user_id), page)
        self.step("progress-paused", lambda: self.paused(page, user_id), page)
        self.step("done-verified", lambda: self.done(page), page)
        self.step("nothing-left", lambda: self.nothing_left(page), page)
        self.step("stale-tab-signed-out", lambda: self.stale_tab(stale), stale)
        reopened = ctx.new_page()
        self.watch(reopened)
        self.step("saved-token-signed-out", lambda: self.saved_token(reopened, saved), reopened)
        ctx.close()

    def what_we_hold(self, page, email):
        self.tab_to(page, "#export-start", "the \"Show what you hold about me\" button")
        page.keyboard.press("Enter")
        self.wait_visible(page, "#export-sections section[data-service]",
                          "the export's sections (status: " + self.text(page, "#export-status") + ")")
        services = page.evaluate("() => [...document.querySelectorAll('#export-sections section[data-service]')].map(s => s.dataset.service)")
        tables = page.evaluate("() => document.querySelectorAll('#export-sections table thead th').length")
        if not tables:
            raise CheckFailed("no table with a header row among the sections")
        if email.lower() not in self.text(page, "#export-sections").lower():
            raise CheckFailed("the sections do not show the person's email")
        return f"sections {', '.join(services)}; {tables} column headers; " + self.scan(page, "what we hold")

    def download_json(self, page):
        self.tab_to(page, "#export-download", "the \"Download (JSON)\" button")
        with page.expect_download(timeout=self.left_ms()) as d:
            page.keyboard.press("Enter")
        path = d.value.path()
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if self.a.email.lower() not in json.dumps(data).lower():
            raise CheckFailed("the downloaded JSON does not hold the person's email")
        if "metadata" not in data:
            raise CheckFailed("the downloaded JSON has no metadata: not the whole bundle")
        return f"{d.value.suggested_filename}: {len(data) - 1} services and metadata"

    def preview(self, page):
        self.tab_to(page, "#preview-start", "the \"See what will be deleted\" button")
        page.keyboard.press("Enter")
        self.wait_visible(page, "#preview-list li[data-service]", "the erase preview")
        if not self.focused(page, "#preview-title"):
            raise CheckFailed("the focus did not move to the preview")
        billing = self.text(page, '#preview-list li[data-service="billing"] .keeps')
        if not billing.strip():
            raise CheckFailed("billing's preview does not say what it keeps and why")
        return f"billing: \"{billing.strip()[:90]}…\"; " + self.scan(page, "erase preview")

    def confirm(self, page, user_id):
        self.tab_to(page, "#confirm-submit", "the \"Delete my account\" button")
        page.keyboard.press("Enter")        # not ticked yet: refused, the focus goes to the box
        self.wait_visible(page, "#confirm-error", "the refusal of an unconfirmed deletion")
        if not self.focused(page, "#confirm-check"):
            raise CheckFailed("after the refusal the focus is not on the confirmation box")
        page.keyboard.press("Space")
        if not page.is_checked("#confirm-check"):
            raise CheckFailed("Space did not tick the confirmation box")
        if "cannot be undone" not in self.text(page, "#confirm-form"):
            raise CheckFailed("the confirmation does not say it cannot be undone")
        scanned = self.scan(page, "confirmation")
        status, hold = self.api("PUT", f"/v1/users/{user_id}/hold",
                                {"reason": "privacy_check: a legal hold"}, token=self.a.admin_token)
        if status != 200:
            raise CheckFailed(f"placing the hold through the API answered {status} {hold}")
        return "an unticked box is refused; Space ticks it; " + scanned + "; a legal hold placed through the API"

    def paused(self, page, user_id):
        self.tab_to(page, "#confirm-submit", "the \"Delete my account\" button")
        page.keyboard.press("Enter")
        self.wait_visible(page, "#erase-view", "the progress view")
        self.wait(page, "() => document.querySelector('#erase-view').dataset.state === 'held'",
                  lambda: f"the job never showed held: \"{self.text(page, '#erase-status')}\"")
        shown = self.text(page, "#erase-view")
        if "Paused" not in shown or "privacy_check" in shown or "legal hold" in shown.lower():
            raise CheckFailed(f"the held job is not shown as just \"paused\": \"{shown[:200]}\"")
        if not re.search(r"\d{4}", self.text(page, "#erase-deadline")):
            raise CheckFailed("no deadline shown")
        scanned = self.scan(page, "paused")
        status, _ = self.api("DELETE", f"/v1/users/{user_id}/hold", token=self.a.admin_token)
        if status != 204:
            raise CheckFailed(f"releasing the hold answered {status}")
        return "\"" + self.text(page, "#erase-status").strip()[:60] + "…\"; " + scanned + "; the hold released"

    def done(self, page):
        self.wait(page, "() => document.querySelector('#erase-view').dataset.state === 'done'",
                  lambda: f"the erasure did not end: \"{self.text(page, '#erase-status')}\"")
        self.wait(page, "() => !!document.querySelector('#cert-verify').dataset.verified",
                  "the certificate was never checked in the page")
        said = self.text(page, "#cert-verify").strip()
        if not said.startswith("✓ Verified") and not said.startswith("Verified"):
            raise CheckFailed(f"the certificate is not verified in the page: \"{said}\"")
        scanned = self.scan(page, "done")
        self.tab_to(page, "#cert-download", "the certificate's download button")
        with page.expect_download(timeout=self.left_ms()) as d:
            page.keyboard.press("Enter")
        with open(d.value.path(), encoding="utf-8") as f:
            cert = json.load(f)
        missing = {"certificate", "signature", "key_id", "decoded"} - set(cert)
        if missing:
            raise CheckFailed(f"the downloaded certificate lacks {sorted(missing)}")
        return f"\"{said}\"; {scanned}; downloaded, and {self.verify_here(cert)}"

    def verify_here(self, cert):
        """The downloaded certificate checked again, with another Ed25519 (Python's cryptography)."""
        try:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        except ImportError:
            return "not checked again here (no cryptography package)"
        unb64 = lambda t: base64.urlsafe_b64decode(t + "=" * (-len(t) % 4))  # noqa: E731
        _, keys = self.api("GET", "/v1/keys")
        key = next((k for k in keys.get("keys", []) if k.get("key_id") == cert["key_id"]), None)
        if key is None:
            raise CheckFailed(f"no published key {cert['key_id']}")
        body = unb64(cert["certificate"])
        try:
            Ed25519PublicKey.from_public_bytes(unb64(key["public_key"])).verify(unb64(cert["signature"]), body)
        except Exception:
            raise CheckFailed("the downloaded certificate's signature does not hold (checked in Python)")
        if json.loads(body) != cert["decoded"]:
            raise CheckFailed("the downloaded certificate's decoded part differs from the signed bytes")
        return "its signature holds in Python too"

    def nothing_left(self, page):
        left = page.evaluate("() => ({s: sessionStorage.length, l: localStorage.length})")
        if left["s"] or left["l"]:
            raise CheckFailed(f"storage not empty after the erase: {left}")
        email = self.a.email.lower()
        body = page.evaluate("""() => document.body.innerText + ' ' + document.body.textContent + ' '
            + [...document.querySelectorAll('input')].map(i => i.value).join(' ')""").lower()
        if email in body:
            raise CheckFailed("the page still shows the person's email after the erase")
        if page.evaluate("() => document.querySelectorAll('#export-sections *, #preview-list *').length"):
            raise CheckFailed("the export or the preview is still in the page")
        return "sessionStorage and localStorage empty; no email in the page"

    def stale_tab(self, stale):
        stale.bring_to_front()
        self.wait(stale, """() => { const v = document.querySelector('#signin-view');
            return !v.hidden && /signed out/i.test(document.querySelector('#notice').innerText); }""",
                  lambda: "the stale tab did not turn to \"signed out\"")
        if stale.evaluate("() => sessionStorage.length"):
            raise CheckFailed("the stale tab keeps something in sessionStorage")
        if self.a.email.lower() in stale.evaluate("() => document.body.innerText").lower():
            raise CheckFailed("the stale tab still shows the person's email")
        return "\"" + self.text(stale, "#notice").strip() + "\""

    def saved_token(self, page, saved):
        """A new tab holding the second tab's storage as it was before the erase."""
        if not saved:
            raise CheckFailed("the second tab kept nothing in sessionStorage to sign in with")
        page.add_init_script("(() => { const saved = %s; if (!sessionStorage.length) "
                             "for (const [k, v] of Object.entries(saved)) sessionStorage.setItem(k, v); })();"
                             % json.dumps(saved))
        page.goto(self.base + "/privacy/", wait_until="domcontentloaded", timeout=self.left_ms())
        return self.stale_tab(page)

    # ---------- the provider's sign-in ----------

    def provider_journey(self, browser):
        a = self.a
        status, cfg = self.api("GET", "/v1/oidc")
        if status != 200:
            raise CheckFailed(f"GET /v1/oidc answered {status}: the node has no provider for the page")
        login_origin = f"http://127.0.0.1:{a.oidc_login_port}"
        self.nav_origins = {origin_of(cfg["authorization_endpoint"]), login_origin}
        server = login_app.start(a.oidc_login_port, a.hydra_admin, a.oidc_subject)
        try:
            ctx = self.new_context(browser)
            page = ctx.new_page()
            self.watch(page)
            self.step("oidc-signed-in", lambda: self.provider_sign_in(page), page)
            self.step("oidc-signed-out", lambda: self.provider_sign_out(page), page)
            ctx.close()
        finally:
            server.shutdown()

    def provider_sign_in(self, page):
        page.goto(self.base + "/privacy/", wait_until="domcontentloaded", timeout=self.left_ms())
        self.wait_visible(page, "#oidc-signin", "the \"Sign in with your organisation\" button")
        self.tab_to(page, "#oidc-signin", "the \"Sign in with your organisation\" button")
        page.keyboard.press("Enter")
        self.wait_visible(page, "#account-view", "the signed-in view after the provider")
        if urlsplit(page.url).query:
            raise CheckFailed(f"the code stays in the address: {page.url}")
        if page.evaluate("() => Object.keys(sessionStorage).some(k => k.includes('oidc'))"):
            raise CheckFailed("the PKCE verifier stays in sessionStorage after the callback")
        email = f"{self.a.oidc_subject}@example.org"
        old, self.a.email = self.a.email, email
        try:
            note = self.what_we_hold(page, email)
        finally:
            self.a.email = old
        return "signed in at the provider (the person registered beforehand); " + note

    def provider_sign_out(self, page):
        self.tab_to(page, "#signout", "the sign-out button", back=True)
        page.keyboard.press("Enter")
        self.wait_visible(page, "#signin-view", "the sign-in view after signing out")
        if page.evaluate("() => sessionStorage.length + localStorage.length"):
            raise CheckFailed("signing out left something in storage")
        return "\"" + self.text(page, "#notice").strip() + "\""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="the node's base URL, e.g. http://127.0.0.1:8080")
    ap.add_argument("--email", required=True, help="a password account with some data")
    ap.add_argument("--password", required=True)
    ap.add_argument("--admin-token", required=True, help="an admin's token: places and releases a legal hold")
    ap.add_argument("--artifacts", required=True, help="directory for the screenshots")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds, for the whole check")
    ap.add_argument("--chromium", default="/usr/bin/chromium", help="browser executable")
    ap.add_argument("--oidc-login-port", type=int, help="port of the login app Hydra sends people to")
    ap.add_argument("--hydra-admin", help="Hydra's admin URL (with --oidc-login-port)")
    ap.add_argument("--oidc-subject", default="privacy-check-person", help="who signs in at the provider")
    a = ap.parse_args()
    if a.oidc_login_port and not a.hydra_admin:
        ap.error("--oidc-login-port needs --hydra-admin")
    os.makedirs(a.artifacts, exist_ok=True)
    if not os.access(a.chromium, os.X_OK):
        print(f"privacy_check: FAIL: no browser at {a.chromium} (apt-get install chromium)")
        return 1

    c = Check(a)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=a.chromium, headless=True,
                                         args=["--no-sandbox"], timeout=c.left_ms())
            try:
                c.password_journey(browser)
                if a.oidc_login_port:
                    c.provider_journey(browser)
            finally:
                browser.close()
    except CheckFailed as e:
        print(f"privacy_check: FAIL: {e}")
        return 1
    except PlaywrightError as e:
        print(f"privacy_check: FAIL: browser error: {str(e).splitlines()[0]}")
        return 1
    print(f"privacy_check: OK: {c.steps} steps passed against {c.base}/privacy/; screenshots in {a.artifacts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
