"""Adoption writes a valid stanza with comments kept, refuses an invalid one, and resolves a
device from the store's "seen, not configured" list (issue 8)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edge_config import load_config
from gateway.core import store as st
from gateway.install.adopt import AdoptError, Adoption, adopt, from_store
from tests.installer_helpers import site
from tests.support import ROOT


def _commented(tmp_path: Path) -> Path:
    path = site(tmp_path, 1883)
    text = path.read_text(encoding="utf-8").replace("devices:\n", "# 设备清单 — keep this comment\ndevices:\n", 1)
    path.write_text(text + "  # the last device above is the access controller\n", encoding="utf-8")
    return path


def test_adopt_appends_valid_stanza_and_keeps_comments(tmp_path: Path) -> None:
    path = _commented(tmp_path)
    before = path.read_text(encoding="utf-8")
    adopt(
        path,
        Adoption(
            id="b2-door-new",
            driver="zigbee2mqtt",
            address="0x00158D00000000AA",
            type="door_contact",
            friendly_name="b2/door-new",
            location={"building": "b2", "unit": "u1"},
        ),
    )
    after = path.read_text(encoding="utf-8")
    assert after.startswith(before.rstrip("\n")[:200])
    assert "# 设备清单 — keep this comment" in after and "# the last device above" in after
    assert "(seen, not configured)" in after
    cfg = load_config(path)
    dev = next(d for d in cfg.devices if d.id == "b2-door-new")
    assert dev.address == "0x00158d00000000aa" and dev.location.building == "b2"


def test_adopt_refuses_invalid_and_leaves_the_file(tmp_path: Path) -> None:
    path = _commented(tmp_path)
    before = path.read_text(encoding="utf-8")
    with pytest.raises(AdoptError) as err:
        adopt(path, Adoption(id="bad", driver="native", address="x9", type="door_contact", location={"building": "b9"}))
    assert any(".location.building: unknown building" in i for i in err.value.issues), err.value.issues
    with pytest.raises(AdoptError, match="already"):
        adopt(path, Adoption(id="door-b1", driver="native", address="x9", type="door_contact"))
    assert path.read_text(encoding="utf-8") == before
    assert not list(tmp_path.glob(".*adopt*"))


def test_adopt_from_the_unconfigured_list_cli(tmp_path: Path) -> None:
    path = site(tmp_path, 1883)
    db = tmp_path / "gateway.db"
    s = st.Store(db, st.Quota(64 << 20, 8 << 20))
    s.conn.execute(
        "INSERT INTO unconfigured VALUES ('zigbee2mqtt', 'name:b1/new-pir', 1, 2, 7, 'zigbee2mqtt/b1/new-pir',"
        " '{\"occupancy\":true}')"
    )
    s.conn.execute("INSERT INTO aliases VALUES ('zigbee2mqtt', 'b1/new-pir', '0x00158d00000000bb', 1)")
    s.close()
    seen = from_store(db, "b1/new-pir")
    assert seen["address"] == "0x00158d00000000bb" and seen["friendly_name"] == "b1/new-pir"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "adopt",
            "--config",
            str(path),
            "--from-store",
            str(db),
            "--address",
            "b1/new-pir",
            "--id",
            "b1-new-pir",
            "--type",
            "motion_sensor",
            "--building",
            "b1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    dev = next(d for d in load_config(path).devices if d.id == "b1-new-pir")
    assert (dev.driver, dev.address, dev.friendly_name) == ("zigbee2mqtt", "0x00158d00000000bb", "b1/new-pir")
    assert sqlite3.connect(db).execute("SELECT count(*) FROM unconfigured").fetchone()[0] == 1
