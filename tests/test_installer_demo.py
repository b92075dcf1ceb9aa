"""The README's run command: `edge-gateway demo` runs the example community with a broker and the
simulator; the API shows the incidents of the scripted scenarios; it stops cleanly (issue 8).

The demo runs 75 s: the issue asks for 60 s, and the fire-lane rule cannot alarm before its
1-minute minimum (fire_lane_max_min >= 1) after the car arrives at +2 s of the simulation.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import httpx

from gateway.install.mosquitto import free_port
from tests.support import ROOT

EXPECTED = {"fall", "door_held_open", "building_offline", "parking_fire_lane"}


def _incident_types(port: int, token: str) -> set[str]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/incidents?limit=500", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return {i["type"] for i in json.load(resp)["items"]}


def _work_the_fall_with_the_demo_links(port: int, text: str) -> None:
    """The demo prints a one-time sign-in link per role; the elder-care worker's signs a browser in
    and works the fall from accept to resolve (item 8 of issue 19)."""
    links = dict(re.findall(r"\((\S+)\):\n\s+(http://\S+#signin=\S+)", text))
    roles = re.findall(r"^    \S+ / ([a-z -]+) \(", text, re.M)
    want = ["installer", "property staff", "elder-care worker", "grid worker", "community office"]
    assert roles == want, text[-3000:]
    assert len(links) == 5
    urls = re.findall(r"(http://\S+#signin=\S+)", text)
    elder = urls[2].split("#signin=", 1)[1]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-Edge-Console": "1"}) as phone:
        assert phone.post("/api/v1/session", json={"link": elder}).status_code == 200
        falls = [i for i in phone.get("/api/v1/incidents?state=open").json()["items"] if i["type"] == "fall"]
        assert falls, "the fall is not visible to the elder-care worker the demo names"
        iid = falls[0]["id"]
        offered = [a["action"] for a in phone.get(f"/api/v1/incidents/{iid}").json()["allowed_actions"]]
        assert "accept" in offered, offered
        for action, data in (("accept", None), ("start", None), ("resolve", {"what_done": "已上门扶起，无外伤"})):
            r = phone.post(f"/api/v1/incidents/{iid}/actions", json={"action": action, "data": data})
            assert r.status_code == 200, r.text
        assert phone.get(f"/api/v1/incidents/{iid}").json()["state"] == "resolved"


def test_demo_runs_and_the_api_shows_scenario_incidents(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "demo.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway",
                "demo",
                "--duration",
                "75",
                "--workdir",
                str(tmp_path / "demo"),
                "--fresh",
                "--broker",
                "embedded",
                "--api-port",
                str(port),
            ],
            cwd=ROOT,
            stdout=logf,
            stderr=subprocess.STDOUT,
        )
    seen: set[str] = set()
    try:
        deadline = time.monotonic() + 120
        token_file = tmp_path / "demo" / "demo.token"
        while time.monotonic() < deadline and proc.poll() is None and not seen >= EXPECTED:
            time.sleep(3)
            if not token_file.exists():
                continue
            try:
                seen = _incident_types(port, token_file.read_text().strip())
            except OSError:
                continue
        assert seen >= EXPECTED, (seen, log.read_text()[-3000:])
        text = log.read_text()
        assert f"http://127.0.0.1:{port}/" in text and "demo token" in text
        _work_the_fall_with_the_demo_links(port, text)
        # the residents' loop once: a building's report QR code and the evaluation link of a handled report
        assert f"http://127.0.0.1:{port}/r/report.html#report." in text, text[-3000:]
        assert f"http://127.0.0.1:{port}/r/evaluate.html#evaluate." in text
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = log.read_text()
    assert "stopped. incidents in the demo store:" in out, out[-2000:]
    assert "Traceback" not in out, out[-3000:]
