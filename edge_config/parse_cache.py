"""The parsed site file, kept between starts so a restart skips the YAML parser.

Parsing the example community's 4,600 lines with ruamel's round-trip loader (needed for the
line numbers of every validation message) costs ~0.8 s of CPU, three quarters of the gateway's
start-up: ~3 s on a Pi-class core (bench/pi_budget.py). The parse result of a file that validated
is kept here, keyed by the SHA-256 of the file's bytes and the parser's version; the next start
with the same bytes loads it (~10 ms) and validates it exactly as before (pydantic, cross-checks,
``${ENV}`` secrets), so a cached start means the same as an uncached one. Only the YAML step is
skipped; a changed file misses and is parsed again.

- Only plain data is stored (dicts, lists, str, int, float, bool, None, dates and times), pickled
  and read back with an unpickler that refuses every other class, so a tampered cache file cannot
  run code; anything unreadable is ignored and the file parsed.
- The site file holds residents' personal data, so the cache is written 0600, one file per site
  file path (replaced when the file changes: an erased resident does not linger in it).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import logging
import os
import pickle
from pathlib import Path
from typing import Any

log = logging.getLogger("edge_config.parse_cache")

_ALLOWED = {("datetime", n) for n in ("date", "datetime", "time", "timezone", "timedelta")}


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:  # Any: a class from the allow-list
        if (module, name) in _ALLOWED:
            return getattr(dt, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not plain config data")


@functools.cache  # the installed parser does not change under a running process
def _parser_version() -> str:
    # From the installed package's metadata: importing ruamel.yaml for its __version__ cost ~10 ms
    # of CPU at every cached start (the parser itself is not needed then).
    from importlib import metadata

    try:
        return metadata.version("ruamel.yaml")
    except metadata.PackageNotFoundError:  # not installed as a distribution (vendored): ask the module
        from ruamel.yaml import __version__

        return str(__version__)


def _file_for(cache_dir: Path, site: Path) -> Path:
    return cache_dir / f"site-{hashlib.sha256(str(site.resolve()).encode()).hexdigest()[:16]}.parsed"


def _key(raw: bytes) -> bytes:
    return hashlib.sha256(raw + b"\0" + _parser_version().encode()).digest()


def load(cache_dir: Path | None, site: Path, raw: bytes) -> Any | None:
    """The parsed data of ``raw`` if a cache of exactly these bytes exists, else None."""
    if cache_dir is None:
        return None
    try:
        blob = _file_for(cache_dir, site).read_bytes()
    except OSError:
        return None
    key = _key(raw)
    if blob[: len(key)] != key:
        return None
    try:
        return _PlainUnpickler(io.BytesIO(blob[len(key) :])).load()
    except Exception as exc:  # any damage: parse the file instead
        log.warning("ignoring the site file's parse cache: %s", exc)
        return None


def store(cache_dir: Path | None, site: Path, raw: bytes, data: Any) -> None:
    """Keep ``data`` (the parse of ``raw``, which validated) for the next start; best effort."""
    if cache_dir is None:
        return
    target = _file_for(cache_dir, site)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(_key(raw))
            pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, target)
    except (OSError, pickle.PicklingError) as exc:
        log.debug("site file parse cache not written to %s: %s", cache_dir, exc)
        try:
            tmp.unlink()
        except OSError:
            pass


def default_dir() -> Path | None:
    """Where ``gateway run`` keeps the parse without ``--store``: ``$EDGE_GATEWAY_CACHE_DIR``, else
    nowhere (the service units and the Docker image pass ``--store``; the cache then sits next to
    the store, in the gateway's own state folder)."""
    env = os.environ.get("EDGE_GATEWAY_CACHE_DIR")
    return Path(env) if env else None
