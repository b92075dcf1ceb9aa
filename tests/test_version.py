"""One version string: the installed package's metadata, or pyproject.toml's when the checkout was
never installed."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib import metadata

import gateway
from tests.support import ROOT


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
