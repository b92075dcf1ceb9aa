"""Community Edge Gateway service.

``__version__`` is the one version string every surface reports (``edge-gateway --version``,
/healthz, ``edge_build_info`` in /metrics, the console footer, the synced health point).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

DISTRIBUTION = "community-edge-gateway"


def _version() -> str:
    # Installed (a wheel, or the editable install of a checkout): the package metadata, so a
    # deployed gateway reports what was installed. Run straight from a checkout that was never
    # installed: the version pyproject.toml declares, which is what the metadata would say.
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        pass
    import tomllib

    try:
        with (Path(__file__).resolve().parent.parent / "pyproject.toml").open("rb") as f:
            return str(tomllib.load(f)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "0+unknown"


__version__ = _version()
