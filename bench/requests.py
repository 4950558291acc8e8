#!/usr/bin/env python3
"""Sends exactly N GET requests over C keep-alive connections (round robin), for counts per
request (callgrind, strace) where wrk's fixed duration will not do. Exits 1 on any non-200.

  requests.py PORT N [C] [HEADER: value ...]
"""

import http.client
import sys


def main(argv):
    port, total = int(argv[1]), int(argv[2])
    conns = int(argv[3]) if len(argv) > 3 else 4
    headers = dict(h.split(": ", 1) for h in argv[4:])
    pool = [http.client.HTTPConnection("127.0.0.1", port, timeout=60) for _ in range(conns)]
    for i in range(total):
        c = pool[i % conns]
        c.request("GET", "/", headers=headers)
        r = c.getresponse()
        r.read()
        if r.status != 200:
            print(f"request {i}: status {r.status}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
