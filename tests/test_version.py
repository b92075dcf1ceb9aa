"""One version string: the installed package's metadata, or pyproject.toml's when the checkout was
never installed."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import gateway
from cloud_sync.outbox import OutboxProcessor
from edge_config import load_config
from gateway.core import store as st
from tests.support import ROOT
from tests.sync_helpers import site_with_sync


def pyproject_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["version"])


def test_version_is_the_installed_metadata() -> None:
    assert gateway.__version__ == metadata.version(gateway.DISTRIBUTION) == pyproject_version()


def test_version_from_a_checkout_that_was_never_installed() -> None:
    # -S: no site-packages, so no installed metadata; only the checkout on sys.path
    code = "import sys; sys.path.insert(0, sys.argv[1]); import gateway; print(gateway.__version__)"
    out = subprocess.run(
        [sys.executable, "-S", "-c", code, str(ROOT)], capture_output=True, text=True, check=True, cwd="/"
    )
    assert out.stdout.strip() == pyproject_version()
    # and the premise holds: the metadata really is out of reach there
    probe = (
        "import importlib.metadata as m\n"
        "try:\n    m.version('community-edge-gateway')\n"
        "except m.PackageNotFoundError:\n    print('none')"
    )
    found = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True, cwd="/")
    assert found.stdout == "none\n"


def test_the_synced_health_point_carries_the_version(tmp_path: Path) -> None:
    cfg = load_config(site_with_sync(tmp_path, "http://127.0.0.1:9"))
    store = st.Store(tmp_path / "gateway.db", st.Quota(64 * 1024 * 1024, 8 * 1024 * 1024))
    try:
        line = OutboxProcessor(cfg).health_line(store.conn, 1, st.now_ms())
    finally:
        store.close()
    assert line.startswith("edge_health,") and f'version="{gateway.__version__}"' in line
