#!/usr/bin/env python3
"""Browser check of the ops page (ui/) served by a node (or by tests/ops/mock_api.py).

    ui_check.py --url http://127.0.0.1:PORT/ui/ --email E --password P \
                --down-node NAME --pending-dest SERVICE --screenshot OUT.png [--timeout 30]

Drives Debian's Chromium (no browser download: executable_path) headless with
Playwright: a wrong password shows #login-error; the right one shows the
dashboard, which must come to show node NAME down, a running erase job with
SERVICE pending, and #oldest-erasure naming one of those jobs, then refresh by
itself. It also checks that nothing is loaded from another origin, that the
page shows no '@' (no emails) nor a user id, that there is no console error
(but the one 401 of the wrong password, and the browser's own /favicon.ico
404), and that sign-out goes back to the form. Every wait polls against one
deadline (--timeout seconds overall). Exit 0 when all hold, 1 with a sentence
otherwise (a screenshot is still taken when the page got that far).
"""
import argparse
import os
import re
import sys
import time
from urllib.parse import urlsplit

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright
except ImportError:
    print("ui_check: FAIL: the playwright package is not installed "
          "(pip install -r tests/ops/requirements.txt)")
    sys.exit(1)


class CheckFailed(Exception):
    pass


# What the dashboard shows, read in the page (for the waits and for the failure sentences).
STATE_JS = r"""
([downNode, dest]) => {
  const q = (s) => document.querySelector(s);
  const visible = (e) => !!e && !e.closest('[hidden]') && e.getClientRects().length > 0;
  const nodes = [...document.querySelectorAll('#nodes tbody tr[data-node]')]
    .map(r => ({name: r.dataset.node, alive: r.dataset.alive}));
  const rows = [...document.querySelectorAll('#running-jobs tbody tr[data-job]')];
  const erasePending = rows.filter(r => r.dataset.kind === 'erase' &&
      [...r.querySelectorAll('.badge[data-service][data-status]')]
        .some(b => b.dataset.service === dest && b.dataset.status === 'pending'))
    .map(r => r.dataset.job);
  const oe = q('#oldest-erasure');
  const runningErase = rows.filter(r => r.dataset.kind === 'erase').map(r => r.dataset.job);
  const err = q('#login-error'), banner = q('#refresh-error');
  return {
    loginVisible: visible(q('#login-form')),
    dashboardVisible: visible(q('#nodes')),
    loginError: visible(err) ? err.innerText.trim() : '',
    refreshError: visible(banner) ? banner.innerText.trim() : '',
    nodes,
    nodeDown: nodes.some(n => n.name === downNode && n.alive === 'false'),
    runningRows: rows.length,
    erasePending,
    oldestJob: oe ? (oe.dataset.job || '') : '',
    oldestText: oe ? oe.innerText.trim() : '',
    oldestOk: !!oe && !!oe.dataset.job && oe.innerText.includes(oe.dataset.job)
              && runningErase.includes(oe.dataset.job),
    updated: (q('#updated') || {}).innerText || '',
    counts: [...document.querySelectorAll('#job-counts td[data-kind][data-state]')].length,
    eraseRunningCount: Number((q('#job-counts td[data-kind="erase"][data-state="running"]') || {}).innerText || 0),
  };
}
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="the page, e.g. http://127.0.0.1:8080/ui/")
    ap.add_argument("--email", required=True, help="an admin account's email")
    ap.add_argument("--password", required=True)
    ap.add_argument("--down-node", required=True, help="a node the page must show down")
    ap.add_argument("--pending-dest", required=True,
                    help="a service some running erase job must show pending")
    ap.add_argument("--screenshot", required=True, help="full-page PNG written here")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds, for the whole check")
    ap.add_argument("--chromium", default="/usr/bin/chromium", help="browser executable")
    a = ap.parse_args()

    try:
        checked = run(a)
    except CheckFailed as e:
        print(f"ui_check: FAIL: {e}")
        return 1
    print(f"ui_check: OK: {len(checked)} checks passed against {a.url}")
    return 0


def run(a):
    deadline = time.monotonic() + a.timeout
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(a.url))
    checked = []

    def ok(what):
        checked.append(what)
        print(f"  ok: {what}", flush=True)

    def left_ms():
        ms = (deadline - time.monotonic()) * 1000
        if ms <= 0:
            raise CheckFailed(f"the {a.timeout:g} s deadline passed")
        return ms

    if not os.access(a.chromium, os.X_OK):
        raise CheckFailed(f"no browser at {a.chromium} (apt-get install chromium)")

    console_errors, page_errors, offsite = [], [], []
    allowed_401 = {"left": 0}

    def on_console(msg):
        if msg.type != "error":
            return
        loc = (msg.location or {}).get("url", "")
        if ("status of 401" in msg.text and urlsplit(loc).path == "/v1/sessions"
                and allowed_401["left"] > 0):
            allowed_401["left"] -= 1          # the wrong password's answer, expected
            return
        if urlsplit(loc).path == "/favicon.ico":
            return                            # the browser's own fetch: the page has no icon
        console_errors.append(f"{msg.text} ({loc})" if loc else msg.text)

    def on_route(route):
        u = route.request.url
        if u.startswith(origin + "/"):
            route.continue_()
        else:
            offsite.append(u)
            route.abort()

    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=a.chromium, headless=True,
                                         args=["--no-sandbox"], timeout=left_ms())
        except PlaywrightError as e:
            raise CheckFailed(f"chromium did not start: {str(e).splitlines()[0]}")
        page = None
        try:
            ctx = browser.new_context(viewport={"width": 1440, "height": 900})
            ctx.route("**/*", on_route)
            page = ctx.new_page()
            page.on("console", on_console)
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            logins = []
            page.on("response", lambda r: logins.append(r) if r.request.method == "POST"
                    and urlsplit(r.url).path == "/v1/sessions" and r.status == 200 else None)
            checks(a, page, left_ms, ok, allowed_401)
            no_user_ids(page, ctx, origin, logins, left_ms, ok)
            page.screenshot(path=a.screenshot, full_page=True, timeout=left_ms())
            ok(f"full-page screenshot written to {a.screenshot}")
            signout(page, left_ms, ok)
            if offsite:
                raise CheckFailed(f"the page tried to load from another origin: {offsite[0]}")
            ok("nothing was requested from another origin")
            if page_errors:
                raise CheckFailed(f"the page threw: {page_errors[0]}")
            if console_errors:
                raise CheckFailed(f"{len(console_errors)} console error(s), the first: {console_errors[0]}")
            ok("no console errors (the wrong password's 401 and a /favicon.ico miss aside)")
        except CheckFailed:
            if page is not None:
                try:
                    page.screenshot(path=a.screenshot, full_page=True, timeout=5000)
                    print(f"  (screenshot of the failure: {a.screenshot})")
                except PlaywrightError:
                    pass
            raise
        except PlaywrightTimeout as e:
            raise CheckFailed(f"timed out: {str(e).splitlines()[0]}")
        except PlaywrightError as e:
            raise CheckFailed(f"browser error: {str(e).splitlines()[0]}")
        finally:
            browser.close()
    return checked


def state(page, a):
    return page.evaluate(STATE_JS, [a.down_node, a.pending_dest])


def wait_until(page, a, left_ms, cond_js, explain):
    """Polls cond_js (a JS predicate over the STATE_JS snapshot) until it holds or the deadline."""
    try:
        page.wait_for_function(
            f"([d, s]) => {{ const st = ({STATE_JS})([d, s]); return ({cond_js})(st); }}",
            arg=[a.down_node, a.pending_dest], polling=200, timeout=left_ms())
    except PlaywrightTimeout:
        raise CheckFailed(explain(state(page, a)))


def checks(a, page, left_ms, ok, allowed_401):
    page.set_default_timeout(left_ms())
    try:
        resp = page.goto(a.url, wait_until="domcontentloaded", timeout=left_ms())
    except PlaywrightError as e:
        raise CheckFailed(f"cannot open {a.url}: {str(e).splitlines()[0]}")
    if resp is None or resp.status != 200:
        raise CheckFailed(f"{a.url} answered {resp.status if resp else 'nothing'}, not 200")
    page.wait_for_selector("#login-form", state="visible", timeout=left_ms())
    ok("the page loads and shows the sign-in form")

    # A wrong password first: the form stays, with an error.
    allowed_401["left"] = 1
    page.fill("#email", a.email)
    page.fill("#password", a.password + "-not-this-one")
    page.click("#login-form [type=submit]")
    wait_until(page, a, left_ms, "st => st.loginError !== ''",
               lambda st: "a wrong password showed no #login-error"
               + (" (the dashboard opened instead)" if st["dashboardVisible"] else ""))
    st = state(page, a)
    if st["dashboardVisible"]:
        raise CheckFailed("a wrong password opened the dashboard")
    ok(f"a wrong password shows #login-error: \"{st['loginError']}\"")

    # The right one.
    page.fill("#email", a.email)
    page.fill("#password", a.password)
    page.click("#login-form [type=submit]")
    wait_until(page, a, left_ms, "st => st.dashboardVisible || st.loginError !== ''",
               lambda st: "signing in opened neither the dashboard nor an error")
    st = state(page, a)
    if not st["dashboardVisible"]:
        raise CheckFailed(f"signing in failed: #login-error says \"{st['loginError']}\"")
    if page.input_value("#password") != "":
        raise CheckFailed("the password stays in the form after signing in")
    ok("signing in opens the dashboard (and clears the password field)")

    # The data: node down, erase job pending on the service, oldest erasure named.
    def explain(st):
        if not st["dashboardVisible"]:
            return f"the page went back to the sign-in form: \"{st['loginError']}\""
        if not st["nodeDown"]:
            seen = ", ".join(f"{n['name']}={'alive' if n['alive'] == 'true' else 'down'}"
                             for n in st["nodes"]) or "no nodes"
            return (f"the nodes table never showed {a.down_node} down (it shows {seen})"
                    + (f"; refresh error: {st['refreshError']}" if st["refreshError"] else ""))
        if not st["erasePending"]:
            return (f"no running erase job showed {a.pending_dest} pending "
                    f"({st['runningRows']} running job rows)"
                    + (f"; refresh error: {st['refreshError']}" if st["refreshError"] else ""))
        return f"#oldest-erasure does not name a running erase job (it says \"{st['oldestText']}\")"

    wait_until(page, a, left_ms, "st => st.dashboardVisible && st.nodeDown && st.erasePending.length > 0 && st.oldestOk",
               explain)
    st = state(page, a)
    ok(f"#nodes shows {a.down_node} down (nodes: "
       + ", ".join(f"{n['name']} {'alive' if n['alive'] == 'true' else 'down'}" for n in st["nodes"]) + ")")
    ok(f"#running-jobs shows {len(st['erasePending'])} erase job(s) with {a.pending_dest} pending")
    ok(f"#oldest-erasure names a running erase job: \"{st['oldestText']}\"")
    if st["counts"] == 0 or st["eraseRunningCount"] < 1:
        raise CheckFailed("#job-counts has no running erase job counted")
    ok(f"#job-counts counts {st['eraseRunningCount']} running erase job(s)")

    # It refreshes by itself: "updated at HH:MM:SS" moves on, with no error banner.
    if not re.search(r"updated at \d\d:\d\d:\d\d", st["updated"]):
        wait_until(page, a, left_ms, r"st => /updated at \d\d:\d\d:\d\d/.test(st.updated)",
                   lambda s: f"#updated does not say \"updated at HH:MM:SS\" (it says \"{s['updated']}\")")
        st = state(page, a)
    first = st["updated"]
    wait_until(page, a, left_ms,
               f"st => /updated at \\d\\d:\\d\\d:\\d\\d/.test(st.updated) && st.updated !== {first!r} && st.refreshError === ''",
               lambda s: f"the page did not refresh by itself (#updated stays \"{s['updated']}\")"
               + (f"; refresh error: {s['refreshError']}" if s["refreshError"] else ""))
    ok(f"the page refreshes by itself: \"{first}\" -> \"{state(page, a)['updated']}\", no #refresh-error")

    # No personal data: no email anywhere in the page's text.
    text = page.evaluate("() => document.body.innerText + '\\n' + document.body.textContent")
    if "@" in text:
        at = text.index("@")
        raise CheckFailed(f"the page's text contains '@' (an email?): \"…{text[max(0, at - 20):at + 20]}…\"")
    ok("the page's text contains no '@' (no emails shown)")


def no_user_ids(page, ctx, origin, logins, left_ms, ok):
    """No user id in the page: the admin's own (from the sign-in answer) nor any
    job's (export and register jobs carry the owner's id), read from the API."""
    if not logins:
        raise CheckFailed("the page signed in without a 200 answer of POST /v1/sessions")
    session = logins[-1].json()
    ids = {str(session.get("user_id") or "")}
    auth = {"Authorization": "Bearer " + str(session.get("token") or "")}
    for q in ("limit=100", "limit=100&state=running"):
        r = ctx.request.get(f"{origin}/v1/jobs?{q}", headers=auth, timeout=left_ms())
        if r.ok:
            ids.update(str(j.get("user_id") or "") for j in (r.json().get("jobs") or []))
    ids.discard("")
    text = page.evaluate("() => document.body.innerText + '\\n' + document.body.textContent")
    shown = sorted(i for i in ids if i in text)
    if shown:
        raise CheckFailed(f"the page shows a user id ({shown[0]})")
    ok(f"the page shows no user id (checked {len(ids)}: the admin's and the jobs' owners')")


def signout(page, left_ms, ok):
    page.click("#signout", timeout=left_ms())
    page.wait_for_selector("#login-form", state="visible", timeout=left_ms())
    kept = page.evaluate("() => Object.keys(sessionStorage).filter(k => sessionStorage.getItem(k).includes('token'))")
    if kept:
        raise CheckFailed("sign-out left the token in sessionStorage")
    ok("#signout goes back to the sign-in form and forgets the token")


if __name__ == "__main__":
    sys.exit(main())
