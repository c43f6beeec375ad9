"""What the answer bounds cost: requests/s of a normal small fetch through HttpClient with no
deadline and no byte limit (the old way: the body read whole by requests) against the defaults
(the call watched by the deadline thread, the body streamed and counted against max_bytes),
side by side in one run, alternating rounds so both meet the same machine.

    python bench/bench_answer_bounds.py [--seconds 3] [--rounds 4] [--threads 1]

A local server answers a 2 KB JSON body on keep-alive connections.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from personalize.sync.http import HttpClient
from personalize.sync.testing import local_policy

BODY = json.dumps({"results": [{"id": str(i), "name": f"product {i}"} for i in range(80)]}).encode()


ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BODY)) + BODY


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):  # one write: headers and body in separate packets would meet delayed ACKs (40 ms each)
        self.wfile.write(ANSWER)


def rate(make, url: str, seconds: float, threads: int) -> float:
    done = [0] * threads
    stop = time.monotonic() + seconds

    def work(n: int) -> None:
        http = make()
        while time.monotonic() < stop:
            http.get_json(url)
            done[n] += 1

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    started = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(done) / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/items"
    kinds = {
        "old (no deadline, no byte limit)": lambda: HttpClient(policy=local_policy(), deadline=None, max_bytes=None),
        "new (deadline 300 s, max_bytes 32 MB)": lambda: HttpClient(policy=local_policy()),
    }
    totals = {k: [] for k in kinds}
    rate(kinds["new (deadline 300 s, max_bytes 32 MB)"], url, 0.5, args.threads)  # warm up
    for r in range(args.rounds):
        for kind, make in (kinds.items() if r % 2 == 0 else reversed(kinds.items())):
            totals[kind].append(rate(make, url, args.seconds, args.threads))
    print(f"{len(BODY)} byte JSON answers, {args.threads} thread(s), {args.rounds} rounds of {args.seconds:g} s each")
    for kind, figures in totals.items():
        print(f"  {kind:40s} {sum(figures) / len(figures):8.0f} requests/s  (rounds: {', '.join(f'{f:.0f}' for f in figures)})")
    old, new = (sum(f) / len(f) for f in totals.values())
    print(f"  new / old: {new / old:.3f}")
    server.shutdown()


if __name__ == "__main__":
    main()
