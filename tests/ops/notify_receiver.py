"""A receiver of Custodian's job notifications (notify.urls), as an operator
would write one: every POST is verified with the `standardwebhooks` library
(an implementation of Standard Webhooks 1.0 that is not Custodian's) against
the node's secret, and recorded as one JSON line:
  {"id": <webhook-id>, "verified": true|false, "answered": <status>, "event": {...}}
With --fail-first it answers 503 to the first delivery of each webhook-id (the
node must send the same event again, with the same id).

  python3 notify_receiver.py --port P --secret-file DATA/external.secret \
      --record events.jsonl [--fail-first]
"""

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--secret-file", required=True)
    p.add_argument("--record", required=True)
    p.add_argument("--fail-first", action="store_true")
    args = p.parse_args()
    with open(args.secret_file) as f:
        webhook = Webhook(f.read().strip())
    seen: set[str] = set()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            wid = headers.get("webhook-id", "")
            try:
                event = webhook.verify(body, headers)
                verified = True
            except Exception:  # any failure to verify: refused
                event, verified = None, False
            with lock:
                first = wid not in seen
                seen.add(wid)
                status = 401 if not verified else (503 if args.fail_first and first else 204)
                with open(args.record, "a") as out:
                    out.write(json.dumps({"id": wid, "verified": verified, "answered": status,
                                          "event": event, "raw": body.decode("utf-8", "replace")})
                              + "\n")
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening on {args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
