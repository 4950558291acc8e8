#!/usr/bin/env python3
"""An OTLP/HTTP collector that accepts every export and keeps nothing: the spans' destination
for the pass-through benchmark's tracing rows, so the proxy's exporter does its whole job
(encode, send, read the answer) without a real collector's cost on the machine. Counts the
exports and spans' bytes it was sent, printed at exit. Usage: otlp_sink.py PORT"""

import http.server
import signal
import sys

received = {"exports": 0, "bytes": 0}


class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        received["exports"] += 1
        received["bytes"] += length
        # An empty ExportTraceServiceResponse: every span accepted.
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_):
        pass


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink)

    def stop(*_):
        print(f"exports={received['exports']} bytes={received['bytes']}", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()


if __name__ == "__main__":
    main()
