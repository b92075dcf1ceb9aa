"""The README's ``status`` example works after ``./scripts/run`` (issue 23, item 9): it names the
site file the demo writes, whose store is the one the demo fills.

The static test checks that README, scripts/run, the demo command's default and the demo's copy of
the site file use the same path values; the end-to-end test runs a short demo in a scratch folder
laid out like the repository and then the README's command, as written, in that folder."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from edge_config import load_config
from gateway.cli import build_parser
from gateway.install.demo import DEFAULT_CONFIG, DEFAULT_WORKDIR, SITE_FILE, STORE_FILE, write_demo_config
from gateway.install.mosquitto import free_port
from tests.support import ROOT


def _readme_status_args() -> list[str]:
    """The arguments of the README's ``edge-gateway status`` example (comment dropped)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    [line] = [m.group(1) for m in re.finditer(r"(?m)^\.venv/bin/edge-gateway status (.*)$", readme)]
    return shlex.split(line.split("#", 1)[0])


def test_readme_scripts_run_and_the_demo_agree_on_the_paths(tmp_path: Path) -> None:
    assert _readme_status_args() == ["--config", str(DEFAULT_WORKDIR / SITE_FILE)]
    run = (ROOT / "scripts" / "run").read_text(encoding="utf-8")
    demo_line = next(line for line in run.splitlines() if "edge-gateway demo" in line)
    assert "--workdir" not in demo_line  # ./scripts/run uses the default folder, from the repository
    assert 'cd "$(dirname "$0")/.."' in run
    assert build_parser().parse_args(["demo"]).workdir == str(DEFAULT_WORKDIR)
    site, cfg = write_demo_config(DEFAULT_CONFIG, tmp_path, "127.0.0.1", 1883, 8080)
    assert site == tmp_path / SITE_FILE
    assert Path(cfg.store.path) == tmp_path / STORE_FILE == Path(load_config(site).store.path)


def test_the_readme_status_command_reads_the_store_a_demo_filled(tmp_path: Path) -> None:
    (tmp_path / "edge_config").symlink_to(ROOT / "edge_config")  # repository-relative paths resolve
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = ["demo", "--duration", "4", "--broker", "mosquitto", "--api-port", str(free_port())]
    demo = subprocess.run(
        [sys.executable, "-m", "gateway", *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    args = _readme_status_args()
    assert f"store counters: edge-gateway status {shlex.join(args)}" in demo.stdout  # the demo says it too
    status = subprocess.run(
        [sys.executable, "-m", "gateway", "status", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    counters = json.loads(status.stdout)
    assert counters["readings"] > 0 and counters["devices_online"] + counters["devices_offline"] > 0
