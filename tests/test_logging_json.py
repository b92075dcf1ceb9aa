"""`edge-gateway --log-format json`: the real service writes one JSON object per line with stable
keys (stderr and --log-file alike), and neither the MQTT password nor residents' data; plain text
stays the default."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from gateway.install.mosquitto import Mosquitto, free_port
from tests.conftest import write_site
from tests.support import ROOT, port_open, wait_until

KEYS = {"ts", "level", "logger", "msg", "thread"}
SECRET = "s3cret-Pa55word-for-the-log-test"


def run_gateway(site: Path, store: Path, *options: str) -> tuple[int, str]:
    """Start the service (it logs its start at info), stop it with SIGTERM (it logs the stop)."""
    port = free_port()
    env = {**os.environ, "MQTT_PASSWORD": SECRET}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            *options,
            "run",
            "--config",
            str(site),
            "--store",
            str(store),
            "--api-port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(lambda: port_open("127.0.0.1", port) or proc.poll() is not None, 30)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    return proc.returncode, err


def write_secret_site(tmp_path: Path, port: int) -> Path:
    site = write_site(tmp_path, port)
    text = site.read_text("utf-8").replace("mqtt:\n", 'mqtt:\n  username: edge\n  password: "${MQTT_PASSWORD}"\n', 1)
    site.write_text(text, "utf-8")
    os.chmod(site, 0o600)  # it holds residents' data: the gateway refuses a world-readable one
    return site


def test_json_logs_one_object_per_line_with_stable_keys(private_broker: Mosquitto, tmp_path: Path) -> None:
    site = write_secret_site(tmp_path, private_broker.port)
    log_file = tmp_path / "gateway.log"
    code, err = run_gateway(site, tmp_path / "gateway.db", "--log-format", "json", "--log-file", str(log_file))
    assert code == 0, err[-2000:]
    for text in (err, log_file.read_text("utf-8")):
        lines = text.splitlines()
        assert lines
        records = [json.loads(line) for line in lines]  # every line is one JSON object
        for r in records:
            assert KEYS <= set(r) <= KEYS | {"exc", "stack"}, r
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["ts"]), r["ts"]
            assert r["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
        msgs = [r["msg"] for r in records]
        assert any(m.startswith("gateway gw-test started") for m in msgs), msgs
        assert any(r["logger"] == "gateway" and m == "gateway stopped" for r, m in zip(records, msgs, strict=True))
        # no secrets, no personal data (the site file's resident and staff)
        for forbidden in (SECRET, "张阿姨", "13800000001"):
            assert forbidden not in text


def test_text_stays_the_default(private_broker: Mosquitto, tmp_path: Path) -> None:
    site = write_secret_site(tmp_path, private_broker.port)
    code, err = run_gateway(site, tmp_path / "gateway.db")
    assert code == 0, err[-2000:]
    lines = err.splitlines()
    assert lines and all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \S+: ", ln) for ln in lines[:3]), lines[
        :3
    ]
    assert SECRET not in err
