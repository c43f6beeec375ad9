"""`personalize demo` as a new user runs it: a real process that builds, prints and serves."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_builds_prints_credentials_and_serves(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONALIZE_")}
    env["PERSONALIZE_INSTANCE_PATH"] = str(tmp_path / "instance")
    proc = subprocess.Popen(
        [sys.executable, "-m", "personalize", "demo", "--port", str(port), "--visitors", "300"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    output = ""
    try:
        deadline = time.time() + 120
        while time.time() < deadline and "Public key:" not in output:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            output += line
        assert "Public key:" in output, output
        key = re.search(r"Public key:\s+(pk_\S+)", output).group(1)
        assert re.search(r"Admin:\s+http://127\.0\.0\.1:\d+/admin\s+\(email \S+@\S+, password \S+\)", output), output
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                page = urllib.request.urlopen(base + "/", timeout=5).read().decode()
                break
            except OSError:
                time.sleep(0.1)
        assert "data-personalize-slot" in page and f'data-shop="{key}"' in page and "/static/widget.js" in page
        body = json.loads(urllib.request.urlopen(f"{base}/api/v1/recommendations?key={key}&visitor=demo-v0001&limit=4", timeout=5).read())
        assert body["strategy"] == "personal" and len(body["items"]) == 4
        assert urllib.request.urlopen(base + "/static/widget.js", timeout=5).status == 200
        assert urllib.request.urlopen(base + "/admin/login", timeout=5).status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
