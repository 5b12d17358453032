#!/usr/bin/env python3
"""MOCK of a Custodian node's HTTP API, for trying the ops page (ui/) without a node.

Not the real server: it serves the page's files from ui/ and fake JSON for the
calls the page makes, shaped like the node's answers (docs/api.md), so it also
documents the contract the page relies on:

  GET  /ui/, /ui/app.js, /ui/style.css     the page's three files
  POST /v1/sessions   {"email","password"} -> 200 {"token","user_id","expires_at_ms"}
                      401 {"error"} wrong credentials; 429 {"error"} + Retry-After
                      after 5 failures of one email within 60 s; 400 missing fields
  DELETE /v1/sessions                      -> 204 (the token is revoked)
  GET  /v1/cluster    (admin's Bearer token) -> 200 cluster status; 401 no/bad token;
                      403 token of a non-admin
  GET  /v1/jobs?limit=N[&state=S][&after=CURSOR]   (admin's token)
                      -> 200 {"jobs":[...], "next":"CURSOR"} newest first; `next`
                      absent on the last page. Each job: job_id, kind, state,
                      services {service: pending|done|failed}, accepted_ms,
                      done_ms (finished jobs); export and register jobs also carry
                      user_id, which the page must never show. `unreachable`:
                      job-holding services some of whose shards did not answer.
  int64 fields (ms times, depths, counts) are JSON strings, as the node prints them.

The fake cluster: nodes a (this node), b (alive) and c (down: no services, last
seen a while ago); the outboxes of user and billing towards watchhistory (hosted
by c) grow; among ~230 jobs, two erase jobs and one export job are running with
watchhistory pending.

    python3 tests/ops/mock_api.py --port 8099
    # admin:  admin@example.com / correct-horse-battery
    # member: member@example.com / correct-horse-battery  (not an admin: 403)
"""
import argparse
import base64
import json
import os
import random
import secrets
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

UI_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "ui")
UI_FILES = {
    "/ui/": ("index.html", "text/html; charset=utf-8"),
    "/ui/index.html": ("index.html", "text/html; charset=utf-8"),
    "/ui/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/ui/style.css": ("style.css", "text/css; charset=utf-8"),
}
SERVICES = ["auth", "authz", "billing", "user", "watchhistory"]


def now_ms():
    return int(time.time() * 1000)


class FakeCluster:
    def __init__(self, admin_email, member_email, password, leases, fail_every, unreachable):
        self.start = now_ms()
        self.accounts = {
            admin_email.lower(): (password, "0" * 31 + "1", True),
            member_email.lower(): (password, "0" * 31 + "2", False),
        }
        self.tokens = {}        # token -> (user_id, admin, expires_at_ms)
        self.failures = {}      # email -> [ms, ...]
        self.lock = threading.Lock()
        self.leases = leases
        self.fail_every = fail_every
        self.unreachable = unreachable
        self.cluster_calls = 0
        self.jobs = self._make_jobs()

    # ---- sessions ----
    def login(self, email, password):
        email = email.strip().lower()
        t = now_ms()
        with self.lock:
            recent = [f for f in self.failures.get(email, []) if t - f < 60_000]
            self.failures[email] = recent
            if len(recent) >= 5:
                wait = max(1, (60_000 - (t - recent[0])) // 1000)
                return 429, {"error": f"too many failed logins; retry in {wait} s"}, wait
            acct = self.accounts.get(email)
            if not acct or not secrets.compare_digest(acct[0], password):
                recent.append(t)
                return 401, {"error": "wrong email or password"}, None
            token = base64.urlsafe_b64encode(secrets.token_bytes(24)).decode().rstrip("=")
            expires = t + 3600_000
            self.tokens[token] = (acct[1], acct[2], expires)
            self.failures.pop(email, None)
            return 200, {"token": token, "user_id": acct[1], "expires_at_ms": str(expires)}, None

    def who(self, headers):
        auth = headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return 401, "no token"
        with self.lock:
            s = self.tokens.get(auth[len("Bearer "):].strip())
        if not s or s[2] <= now_ms():
            return 401, "invalid or expired token"
        return (200, s) if s[1] else (403, "this call needs the admin role")

    def logout(self, headers):
        auth = headers.get("Authorization", "")
        with self.lock:
            return self.tokens.pop(auth[len("Bearer "):].strip(), None) is not None

    # ---- cluster ----
    def cluster(self):
        t = now_ms()
        up = t - self.start
        self.cluster_calls += 1
        if self.fail_every and self.cluster_calls % self.fail_every == 0:
            return None
        shards = lambda n: list(range(n))
        body = {
            "node": "a",
            "nodes": [
                {"name": "a", "address": "127.0.0.1:7101", "alive": True, "last_seen_ms": str(t),
                 "self": True,
                 "services": [{"service": "auth", "shards": shards(8)},
                              {"service": "authz", "shards": shards(8)},
                              {"service": "user", "shards": shards(8)}],
                 "failed_services": []},
                {"name": "b", "address": "127.0.0.1:7102", "alive": True,
                 "last_seen_ms": str(t - 400), "self": False,
                 "services": [{"service": "billing", "shards": [0, 1, 2, 3]}],
                 "failed_services": []},
                {"name": "c", "address": "127.0.0.1:7103", "alive": False,
                 "last_seen_ms": str(self.start - 47_000), "self": False,
                 "services": [], "failed_services": []},
            ],
            "outbox": [
                {"origin": "user", "dest": "watchhistory", "depth": str(100 + up // 1000),
                 "oldest_age_ms": str(47_000 + up)},
                {"origin": "billing", "dest": "watchhistory", "depth": "12",
                 "oldest_age_ms": str(41_500 + up)},
                {"origin": "auth", "dest": "user", "depth": "1", "oldest_age_ms": "230"},
            ],
            "oldest_pending_age_ms": str(47_000 + up),
        }
        if self.leases:
            body["leases"] = [{"service": s, "shard": i, "owner": "node-a", "epoch": "3",
                               "expires_in_ms": str(9_000 - (up % 10_000))}
                              for s in ("auth", "user") for i in range(2)]
            body["fenced_writes"] = [{"service": "user", "count": "2", "late_applies": "0"},
                                     {"service": "auth", "count": "0", "late_applies": "0"}]
        return body

    # ---- jobs ----
    def _make_jobs(self):
        rnd = random.Random(7)
        jobs = []
        t = self.start
        for i in range(230):
            kind = rnd.choice(["register"] * 5 + ["erase"] * 2 + ["export"])
            accepted = t - 60_000 - i * 37_000
            state = "failed" if rnd.random() < 0.04 else "done"
            svcs = {s: "done" for s in SERVICES}
            if state == "failed":
                svcs[rnd.choice(SERVICES)] = "failed"
            job = {"job_id": "%032x" % rnd.getrandbits(128), "kind": kind, "state": state,
                   "services": svcs, "accepted_ms": str(accepted),
                   "done_ms": str(accepted + rnd.randint(40, 900))}
            if state == "failed":
                job["error"] = "compensated: a service refused the step"
            if kind != "erase":
                job["user_id"] = "%032x" % rnd.getrandbits(128)
            jobs.append(job)
        # Running: waiting for watchhistory, whose node (c) is down.
        pending = {"auth": "done", "authz": "done", "billing": "done", "user": "done",
                   "watchhistory": "pending"}
        running = [
            {"job_id": "%032x" % rnd.getrandbits(128), "kind": "erase", "state": "running",
             "services": dict(pending), "accepted_ms": str(t - 12_400)},
            {"job_id": "%032x" % rnd.getrandbits(128), "kind": "export", "state": "running",
             "services": dict(pending, billing="pending"), "accepted_ms": str(t - 30_100),
             "user_id": "%032x" % rnd.getrandbits(128)},
            {"job_id": "%032x" % rnd.getrandbits(128), "kind": "erase", "state": "running",
             "services": dict(pending), "accepted_ms": str(t - 44_800)},
        ]
        return running + jobs      # newest first

    def list_jobs(self, query):
        try:
            limit = int(query.get("limit", ["100"])[0])
        except ValueError:
            return 400, {"error": "limit must be a number"}
        if not 1 <= limit <= 1000:
            return 400, {"error": "limit must be 1 to 1000"}
        state = query.get("state", [None])[0]
        if state not in (None, "running", "done", "failed"):
            return 400, {"error": "state must be running, done or failed"}
        jobs = [j for j in self.jobs if state is None or j["state"] == state]
        start = 0
        after = query.get("after", [None])[0]
        if after is not None:
            ids = [j["job_id"] for j in jobs]
            if after not in ids:
                return 400, {"error": "unknown cursor"}
            start = ids.index(after) + 1
        page = jobs[start:start + limit]
        body = {"jobs": page} if page else {}          # the node leaves `jobs` out when empty
        if start + limit < len(jobs):
            body["next"] = page[-1]["job_id"]
        if self.unreachable:
            body["unreachable"] = self.unreachable
        return 200, body


class Handler(BaseHTTPRequestHandler):
    server_version = "custodian-mock"
    cluster: FakeCluster = None
    verbose = False

    def log_message(self, fmt, *args):
        if self.verbose:
            sys.stderr.write("mock_api: " + fmt % args + "\n")

    def send_json(self, status, body, extra=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def error(self, status, msg, extra=None):
        self.send_json(status, {"error": msg}, extra)

    def read_json(self):
        n = int(self.headers.get("Content-Length") or 0)
        try:
            v = json.loads(self.rfile.read(n) or b"null")
        except ValueError:
            return None
        return v if isinstance(v, dict) else None

    def admin(self):
        status, who = self.cluster.who(self.headers)
        if status != 200:
            self.error(status, who)
            return False
        return True

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/ui":
            self.send_response(HTTPStatus.MOVED_PERMANENTLY)
            self.send_header("Location", "/ui/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if url.path in UI_FILES:
            name, ctype = UI_FILES[url.path]
            try:
                with open(os.path.join(UI_DIR, name), "rb") as f:
                    data = f.read()
            except OSError:
                return self.error(404, "not found")
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-cache")
            self.send_header("X-Content-Type-Options", "nosniff")
            # As the node sends it (runtime/gateway/ops_routes.cpp).
            self.send_header("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
            self.end_headers()
            self.wfile.write(data)
            return
        if url.path == "/v1/cluster":
            if self.admin():
                body = self.cluster.cluster()
                if body is None:
                    return self.error(503, "cluster status is not available")
                self.send_json(200, body)
            return
        if url.path == "/v1/jobs":
            if self.admin():
                self.send_json(*self.cluster.list_jobs(parse_qs(url.query)))
            return
        if url.path == "/healthz":
            return self.send_json(200, {"status": "ok"})
        self.error(404, "not found")

    def do_POST(self):
        if urlsplit(self.path).path != "/v1/sessions":
            return self.error(404, "not found")
        body = self.read_json()
        if not body or not isinstance(body.get("email"), str) or not isinstance(body.get("password"), str) \
                or not body["email"] or not body["password"]:
            return self.error(400, "email and password are required")
        status, out, wait = self.cluster.login(body["email"], body["password"])
        self.send_json(status, out, {"Retry-After": str(wait)} if wait else None)

    def do_DELETE(self):
        if urlsplit(self.path).path != "/v1/sessions":
            return self.error(404, "not found")
        if not self.cluster.logout(self.headers):
            return self.error(401, "invalid or expired token")
        self.send_json(204, None)


def main():
    ap = argparse.ArgumentParser(description="MOCK Custodian API for the ops page (not the real node)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    ap.add_argument("--email", default="admin@example.com", help="the admin account")
    ap.add_argument("--member-email", default="member@example.com", help="a non-admin account")
    ap.add_argument("--password", default="correct-horse-battery", help="both accounts' password")
    ap.add_argument("--leases", action="store_true", help="answer leases and fenced_writes (MongoDB store)")
    ap.add_argument("--fail-every", type=int, default=0, metavar="N",
                    help="every Nth /v1/cluster answers 503 (to see the refresh-error banner)")
    ap.add_argument("--unreachable", action="append", default=[], metavar="SERVICE",
                    help="/v1/jobs pages name SERVICE in `unreachable` (its jobs may be missing)")
    ap.add_argument("--verbose", action="store_true", help="log every request to stderr")
    a = ap.parse_args()

    Handler.cluster = FakeCluster(a.email, a.member_email, a.password, a.leases, a.fail_every, a.unreachable)
    Handler.verbose = a.verbose
    srv = ThreadingHTTPServer((a.host, a.port), Handler)
    srv.daemon_threads = True
    print(f"mock_api: MOCK serving http://{a.host}:{srv.server_address[1]}/ui/", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()


if __name__ == "__main__":
    main()
