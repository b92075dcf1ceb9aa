"""Packaging (issue 24): the core install runs without OpenCV/numpy, a site with cameras is refused
with what to install, and the hashed locks agree with pyproject.toml and with each other."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ("core", "vision", "demo", "dev")
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)(?:\s*;\s*([^\\]+?))?\s*\\?$")

# Runs in a fresh interpreter in which cv2 and numpy cannot be imported, as on a core install.
BLOCKED = """
import sys
sys.modules["cv2"] = None
sys.modules["numpy"] = None
import importlib.util
real_find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: None if name in ("cv2", "numpy") else real_find_spec(name, *a)
"""


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCKED + code], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_site_without_cameras_runs_without_opencv(tmp_path: Path) -> None:
    code = f"""
from edge_config import load_config
from gateway.app import Gateway
import gateway.api, gateway.cli, cloud_sync.service
cfg = load_config({str(ROOT / "edge_config/examples/community.yaml")!r})
gw = Gateway(cfg, store_path={str(tmp_path / "g.db")!r})
print("devices", len(cfg.devices), "cv2" in sys.modules and sys.modules["cv2"] is not None)
"""
    out = _run(code, ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["devices", "514", "False"]


def test_site_with_cameras_refused_without_vision_extra(tmp_path: Path) -> None:
    from tests.vision_site import write_camera_site

    site, _ = write_camera_site(tmp_path, 1883)
    code = f"""
from edge_config import load_config
from gateway.app import Gateway
from gateway.errors import ConfigProblem
try:
    Gateway(load_config({str(site)!r}), store_path={str(tmp_path / "g.db")!r})
except ConfigProblem as exc:
    print("refused:", exc)
"""
    out = _run(code, ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("refused: this site configures 1 camera(s)")
    assert "cv2 and numpy is not installed" in out.stdout and "[vision]" in out.stdout


def _pins(name: str) -> dict[str, list[tuple[str, str]]]:
    pins: dict[str, list[tuple[str, str]]] = {}
    lines = (ROOT / "requirements" / f"{name}.lock").read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        m = PIN.match(line)
        if m:
            pins.setdefault(canonicalize_name(m[1]), []).append((m[2], m[3] or ""))
            assert i + 1 < len(lines) and "--hash=sha256:" in lines[i + 1], f"{name}.lock: {m[1]} has no hash"
    return pins


def _project() -> dict[str, list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = {"core": [Requirement(r) for r in project["dependencies"]]}
    for extra, items in project["optional-dependencies"].items():
        reqs[extra] = [Requirement(r) for r in items if not r.startswith(project["name"])]
    return reqs


def test_each_lock_satisfies_pyproject_ranges() -> None:
    reqs = _project()
    wanted = {"core": ["core"], "vision": ["core", "vision"], "demo": ["core", "demo"], "dev": list(reqs)}
    for lock in LOCKS:
        pins = _pins(lock)
        for group in wanted[lock]:
            for req in reqs[group]:
                versions = pins.get(canonicalize_name(req.name))
                assert versions, f"{lock}.lock lacks {req.name} (pyproject {group}); run scripts/lock"
                assert any(req.specifier.contains(v, prereleases=True) for v, _ in versions), (
                    f"{lock}.lock pins {req.name}=={versions} outside {req.specifier}; run scripts/lock"
                )


def test_locks_agree_and_core_has_no_opencv() -> None:
    dev = _pins("dev")
    for lock in ("core", "vision", "demo"):
        for name, versions in _pins(lock).items():
            assert versions == dev[name], f"{lock}.lock and dev.lock pin {name} differently"
    core = _pins("core")
    assert "opencv-python-headless" not in core and "numpy" not in core and "amqtt" not in core
    assert "opencv-python-headless" in _pins("vision") and "amqtt" in _pins("demo")


def test_upper_bounds_on_every_runtime_dependency() -> None:
    for group, reqs in _project().items():
        for req in reqs:
            if req.name == "tzdata":  # data only: newer is always right
                continue
            assert any(s.operator in ("<", "<=", "==", "~=") for s in req.specifier), (
                f"{req.name} ({group}) has no upper bound in pyproject.toml"
            )
