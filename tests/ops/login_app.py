#!/usr/bin/env python3
"""A login and consent app for Ory Hydra in tests: it signs everyone in as one subject.

    login_app.py --port N --hydra-admin http://127.0.0.1:ADMIN_PORT --subject alice

Hydra sends the browser to http://127.0.0.1:N/login?login_challenge=X; this app
accepts that login as SUBJECT through Hydra's admin API and sends the browser on
to the answer's redirect_to. Then /consent?consent_challenge=X: it grants the
scopes openid and email, the access-token audience "custodian", and puts
`email` (SUBJECT@example.org) and `name` into the access token. Python's
standard library only; tests/ops/privacy_check.py runs it in a thread (start()).
"""
import argparse
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = "Provider Person"


def accept(hydra_admin, what, challenge, body):
    """PUT .../requests/<what>/accept; returns Hydra's redirect_to."""
    url = (f"{hydra_admin.rstrip('/')}/admin/oauth2/auth/requests/{what}/accept?"
           + urllib.parse.urlencode({f"{what}_challenge": challenge}))
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="PUT",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["redirect_to"]


def make_handler(hydra_admin, subject):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self, status, text, location=None):
            data = text.encode()
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            u = urllib.parse.urlsplit(self.path)
            q = urllib.parse.parse_qs(u.query)
            try:
                if u.path == "/login" and q.get("login_challenge"):
                    to = accept(hydra_admin, "login", q["login_challenge"][0],
                                {"subject": subject, "remember": False})
                elif u.path == "/consent" and q.get("consent_challenge"):
                    to = accept(hydra_admin, "consent", q["consent_challenge"][0], {
                        "grant_scope": ["openid", "email"],
                        "grant_access_token_audience": ["custodian"],
                        "session": {"access_token": {"email": f"{subject}@example.org", "name": NAME}},
                    })
                else:
                    return self.answer(404, "no such page")
            except urllib.error.HTTPError as e:
                return self.answer(502, f"hydra refused: {e.code} {e.read()[:300]!r}")
            except (urllib.error.URLError, OSError, KeyError, ValueError) as e:
                return self.answer(502, f"hydra: {e}")
            self.answer(302, "", location=to)

    return Handler


def start(port, hydra_admin, subject):
    """Serves in a daemon thread; returns the server (call .shutdown() to stop it)."""
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(hydra_admin, subject))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--hydra-admin", required=True, help="Hydra's admin URL")
    ap.add_argument("--subject", required=True)
    a = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", a.port), make_handler(a.hydra_admin, a.subject))
    print(f"login_app: http://127.0.0.1:{a.port}/login and /consent, signing in as {a.subject}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
