"""The site file's parse cache (edge_config/parse_cache.py): same config, refused classes, misses."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest

from edge_config import ConfigError, load_config
from edge_config import parse_cache as pc

EXAMPLE = Path(__file__).resolve().parent.parent / "edge_config/examples/community.yaml"


def test_cached_load_is_the_same_config(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    shutil.copy(EXAMPLE, site)
    cold = load_config(site, parse_cache=tmp_path / "c")
    (cache,) = (tmp_path / "c").iterdir()
    assert cache.stat().st_mode & 0o777 == 0o600  # residents' personal data
    warm = load_config(site, parse_cache=tmp_path / "c")
    assert warm.model_dump() == cold.model_dump() == load_config(site).model_dump()
    assert warm.revision == cold.revision


def test_a_changed_file_is_parsed_again_and_errors_keep_their_lines(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    shutil.copy(EXAMPLE, site)
    load_config(site, parse_cache=tmp_path)
    site.write_text(site.read_text(encoding="utf-8").replace("quota_mb: 512", "quota_mb: -5"), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(site, parse_cache=tmp_path)
    assert all(i.line is not None for i in err.value.issues)


def test_a_tampered_cache_cannot_run_code(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    shutil.copy(EXAMPLE, site)
    raw = site.read_bytes()
    target = pc._file_for(tmp_path, site)
    target.write_bytes(pc._key(raw) + pickle.dumps(os.system))  # a class outside the allow-list
    assert pc.load(tmp_path, site, raw) is None
    assert load_config(site, parse_cache=tmp_path).gateway.id == "gw-hy-01"  # parsed instead
