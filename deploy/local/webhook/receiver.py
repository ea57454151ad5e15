"""A tiny development alert receiver: Alertmanager's webhook_config posts here.

Every notification is printed to stdout as one JSON line (status, alertname, severity and
labels of each alert), so `docker compose logs -f alert-webhook` shows what would page.
Standard library only. Usage: python receiver.py --port 9095 [--out FILE]
"""

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20  # Alertmanager batches stay far below this


def summarize(path, payload):
    """One line per notification: what Alertmanager delivered, without annotations' prose."""
    return {
        "path": path,
        "receiver": payload.get("receiver"),
        "status": payload.get("status"),
        "alerts": [
            {
                "status": a.get("status"),
                "alertname": a.get("labels", {}).get("alertname"),
                "severity": a.get("labels", {}).get("severity"),
                "labels": a.get("labels", {}),
            }
            for a in payload.get("alerts", [])
        ],
    }


def make_handler(out):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("content-length") or 0)
            if length <= 0 or length > MAX_BODY:
                self.send_error(400, "body missing or too large")
                return
            try:
                payload = json.loads(self.rfile.read(length))
            except ValueError:
                self.send_error(400, "body is not JSON")
                return
            line = json.dumps(summarize(self.path, payload), sort_keys=True)
            print(line, file=out, flush=True)
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_GET(self):  # noqa: N802
            self.send_response(200 if self.path == "/healthz" else 404)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):  # the JSON line is the log
            pass

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9095)
    parser.add_argument("--out", help="append notifications to this file instead of stdout")
    args = parser.parse_args()
    out = open(args.out, "a", encoding="utf-8") if args.out else sys.stdout
    server = ThreadingHTTPServer((args.host, args.port), make_handler(out))
    print(json.dumps({"listening": server.server_address[1]}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
