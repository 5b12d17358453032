#!/usr/bin/env python3
"""The reference external participant of docs/services.md.

A small service that Custodian calls over HTTP to provision, erase and export a
user's data. Every call is signed per Standard Webhooks 1.0 (headers webhook-id,
webhook-timestamp, webhook-signature) with the shared secret "whsec_..." that
Custodian keeps in --secret-file; a call that fails verification gets 401 and
changes nothing. Provisions and erasures are de-duplicated by request_id: a
repeated request_id gets the stored answer and is not applied again (exports
are reads, answered afresh and never stored). An erased user is remembered
by a tombstone, so a late provision never brings the data back.

  POST /provision  {"request_id", "job_id", "user_id", "attempt", "email", "display_name"}
  POST /erase      {"request_id", "job_id", "user_id", "attempt"}
  POST /export     {"request_id", "job_id", "user_id", "attempt"}
  GET  /calls      every call received, for tests and operators (unsigned)
  GET  /healthz

An export of a user it holds nothing of answers {"user_id": ...} alone:
Custodian calls /export after every acknowledged erase (request_id
"<erase request id>/verify") and certifies the erasure only if nothing else
comes back.

--fail-times N answers 500 to the first N verified calls of each request_id;
--reject-status S answers S to every verified call; --keep-on-erase
acknowledges erasures and keeps the data. All three are for tests.
Needs Python 3.11 and the `standardwebhooks` package (requirements.txt).
"""
import argparse
import json
import sqlite3
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (id INTEGER PRIMARY KEY, path TEXT, request_id TEXT,
  attempt INTEGER, verified INTEGER, status INTEGER, at REAL, webhook_id TEXT,
  webhook_timestamp TEXT);
CREATE TABLE IF NOT EXISTS processed (request_id TEXT PRIMARY KEY, response TEXT);
CREATE TABLE IF NOT EXISTS failures (request_id TEXT PRIMARY KEY, count INTEGER);
CREATE TABLE IF NOT EXISTS accounts (user_id TEXT PRIMARY KEY, email TEXT, display_name TEXT,
  loyalty_points INTEGER NOT NULL DEFAULT 0, created_at REAL);
CREATE TABLE IF NOT EXISTS tombstones (user_id TEXT PRIMARY KEY, erased_at REAL);
"""
FIELDS = {"request_id": str, "job_id": str, "user_id": str, "attempt": int}
EXTRA = {"/provision": {"email": str, "display_name": str}, "/erase": {}, "/export": {}}
MAX_BODY = 1 << 20


def provision(db, m):
    if db.execute("SELECT 1 FROM tombstones WHERE user_id = ?", (m["user_id"],)).fetchone():
        return {"user_id": m["user_id"], "provisioned": False, "reason": "the user was erased"}
    db.execute("INSERT INTO accounts (user_id, email, display_name, created_at) VALUES (?, ?, ?, ?)"
               " ON CONFLICT (user_id) DO UPDATE SET email = excluded.email,"
               " display_name = excluded.display_name",
               (m["user_id"], m["email"], m["display_name"], time.time()))
    return {"user_id": m["user_id"], "provisioned": True}


def erase(db, m, keep=False):
    # --keep-on-erase: a broken participant that acknowledges and keeps the
    # data (Custodian's verification by export must catch it).
    n = 0 if keep else db.execute("DELETE FROM accounts WHERE user_id = ?", (m["user_id"],)).rowcount
    db.execute("INSERT OR IGNORE INTO tombstones VALUES (?, ?)", (m["user_id"], time.time()))
    return {"user_id": m["user_id"], "erased": n}


def export(db, m):
    rows = db.execute("SELECT user_id, email, display_name, loyalty_points, created_at"
                      " FROM accounts WHERE user_id = ?", (m["user_id"],))
    cols = ["user_id", "email", "display_name", "loyalty_points", "created_at"]
    accounts = [dict(zip(cols, r)) for r in rows]
    # Nothing held: the user id alone (Custodian verifies an erase by this
    # export: any other key is data still held).
    return {"user_id": m["user_id"], "accounts": accounts} if accounts else {"user_id": m["user_id"]}


ACTIONS = {"/provision": provision, "/erase": erase, "/export": export}


class Participant(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every answer has a Content-Length

    def answer(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        return status

    def do_GET(self):
        if self.path == "/healthz":
            return self.answer(200, {"ok": True})
        if self.path == "/calls":
            cols = ["path", "request_id", "attempt", "verified", "status", "at", "webhook_id",
                    "webhook_timestamp"]
            with self.server.lock:
                rows = self.server.db.execute(f"SELECT {', '.join(cols)} FROM calls ORDER BY id")
                calls = [dict(zip(cols, r)) for r in rows.fetchall()]
            return self.answer(200, {"calls": calls})
        return self.answer(404, {"error": "no such endpoint"})

    def do_POST(self):
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            return self.answer(413 if length > 0 else 400, {"error": "bad Content-Length"})
        body = self.rfile.read(length)
        try:
            msg = json.loads(body)
        except ValueError:
            msg = None
        self.verified = False
        db = self.server.db
        with self.server.lock:
            try:
                status, result = self.handle_call(db, body, msg)
            except Exception as e:  # undo a half-applied call; the caller retries
                db.rollback()
                status, result = 500, {"error": f"internal error: {type(e).__name__}"}
            m = msg if isinstance(msg, dict) else {}
            db.execute("INSERT INTO calls (path, request_id, attempt, verified, status, at,"
                       " webhook_id, webhook_timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (self.path, m.get("request_id") if isinstance(m.get("request_id"), str)
                        else None, m.get("attempt") if isinstance(m.get("attempt"), int) else None,
                        int(self.verified), status, time.time(), self.headers.get("webhook-id"),
                        self.headers.get("webhook-timestamp")))
            db.commit()  # the effect, its stored answer and the call log, at once
        self.answer(status, result)

    def handle_call(self, db, body, msg):
        """(status, JSON answer) of one POST; writes to db, uncommitted."""
        if self.path not in ACTIONS:
            return 404, {"error": "no such endpoint"}
        try:
            self.server.webhook.verify(body, dict(self.headers.items()), json_parse=False)
        except Exception as e:  # any malformed header or signature is a failed verification
            return 401, {"error": f"webhook signature verification failed: {e}"}
        self.verified = True
        if not isinstance(msg, dict):
            return 400, {"error": "the body is not a JSON object"}
        want = {**FIELDS, **EXTRA[self.path]}
        bad = [k for k, t in want.items()
               if not isinstance(msg.get(k), t) or isinstance(msg.get(k), bool)]
        if bad:
            return 400, {"error": "missing or mistyped fields: " + ", ".join(bad)}
        rid = msg["request_id"]
        done = db.execute("SELECT response FROM processed WHERE request_id = ?", (rid,)).fetchone()
        if done:
            return 200, json.loads(done[0])
        failed = db.execute("SELECT count FROM failures WHERE request_id = ?", (rid,)).fetchone()
        if (failed[0] if failed else 0) < self.server.args.fail_times:
            db.execute("INSERT INTO failures VALUES (?, 1) ON CONFLICT (request_id)"
                       " DO UPDATE SET count = count + 1", (rid,))
            return 500, {"error": "failing on purpose (--fail-times)"}
        if self.server.args.reject_status:
            return self.server.args.reject_status, {"error": "rejecting on purpose (--reject-status)"}
        if self.path == "/erase":
            result = erase(db, msg, keep=self.server.args.keep_on_erase)
        else:
            result = ACTIONS[self.path](db, msg)
        # An export is a read: answered afresh every time, never stored (a stored
        # copy of the user's data would outlive their erasure).
        if self.path != "/export":
            db.execute("INSERT INTO processed VALUES (?, ?)", (rid, json.dumps(result)))
        return 200, result


def main():
    p = argparse.ArgumentParser(description="Reference external participant of Custodian.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="0 picks a free port")
    p.add_argument("--db", required=True, help="sqlite file")
    p.add_argument("--secret-file", required=True, help='file holding "whsec_..."')
    p.add_argument("--fail-times", type=int, default=0)
    p.add_argument("--reject-status", type=int, default=0)
    p.add_argument("--keep-on-erase", action="store_true",
                   help="acknowledge erasures and keep the data (a broken participant, for tests)")
    args = p.parse_args()
    try:
        with open(args.secret_file) as f:
            webhook = Webhook(f.read().strip())
    except Exception as e:
        sys.exit(f"cannot use the webhook secret in {args.secret_file}: {type(e).__name__}")
    db = sqlite3.connect(args.db, check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA secure_delete = ON")  # erased rows are overwritten, not just unlinked
    db.executescript(SCHEMA)
    server = ThreadingHTTPServer((args.host, args.port), Participant)
    server.daemon_threads = True
    server.db, server.lock, server.webhook, server.args = db, threading.Lock(), webhook, args
    print(f"listening on {args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
