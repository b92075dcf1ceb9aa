"""Config reload under load (issue 8): N messages published while the config is reloaded three times
(one of them invalid) -> exactly N stored; the invalid one is refused and the old config stays."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from edge_config import load_config
from gateway.app import Gateway
from gateway.install.mosquitto import Mosquitto
from tests.conftest import MINI_DEVICES
from tests.installer_helpers import site
from tests.support import TrackedPublisher, count_readings, wait_until

N = 3000


def _one(db: Path, sql: str, *args: object) -> object:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql, args).fetchone()[0]
    finally:
        conn.close()


def test_reload_under_load_loses_nothing(tmp_path: Path, private_broker: Mosquitto) -> None:
    path = site(tmp_path, private_broker.port)
    original = path.read_text(encoding="utf-8")
    cfg = load_config(path)
    gw = Gateway(cfg)
    gw.start()
    try:
        assert wait_until(lambda: gw.broker_connected, 15)
        pub = TrackedPublisher("127.0.0.1", private_broker.port)
        messages = [
            ("edge/v1/devices/acc-b2/state", json.dumps({"values": {"temperature": round(i * 0.01, 2)}}).encode())
            for i in range(N)
        ]
        progress = {"n": 0}

        def on_progress(n: int) -> None:
            progress["n"] = n

        t = threading.Thread(
            target=pub.publish_all, args=(messages,), kwargs={"pace": 0.0005, "on_progress": on_progress}
        )
        t.start()
        revisions = [cfg.revision]
        new_dev = (
            "  - id: acc-new\n    driver: native\n    address: 'acc-new'\n    type: access_controller\n"
            "    location: {building: b2}\n"
        )
        # 1: valid, adds a device
        assert wait_until(lambda: progress["n"] > N // 4, 60)
        path.write_text(original + new_dev, encoding="utf-8")
        assert gw.reload_from(path) == []
        revisions.append(gw.cfg.revision)
        assert gw.routing.by_id.get("acc-new") is not None
        # the staff-channel dispatcher (its own thread) takes the new config too: a fixed robot key
        # or new limits apply without a restart
        assert wait_until(lambda: gw.channels.cfg.revision == gw.cfg.revision, 10)
        # 2: invalid (unknown building): refused with the validation errors, old config stays
        assert wait_until(lambda: progress["n"] > N // 2, 60)
        path.write_text(original + new_dev.replace("building: b2", "building: nowhere"), encoding="utf-8")
        errors = gw.reload_from(path)
        assert errors and any(".location.building: unknown building" in e for e in errors), errors
        assert not any("nowhere" in e for e in errors)  # located, never quoted (issue 23)
        assert gw.cfg.revision == revisions[-1]
        # 3: valid again (the device removed)
        assert wait_until(lambda: progress["n"] > 3 * N // 4, 60)
        path.write_text(original, encoding="utf-8")
        assert gw.reload_from(path) == []
        revisions.append(gw.cfg.revision)
        t.join(120)
        pub.close()
        assert sum(pub.acked.values()) == N
        db = gw.store_path
        assert wait_until(lambda: count_readings(db) >= N, 30)
        assert _one(db, "SELECT count(*) FROM readings WHERE device_id='acc-b2'") == N
        assert gw.routing.by_id.get("acc-new") is None
        rev_ids = [_one(db, "SELECT id FROM config_revisions WHERE revision=?", r) for r in revisions]
        assert len(set(rev_ids)) == 2  # the first and last file are the same revision
        last = _one(db, "SELECT config_rev FROM readings ORDER BY id DESC LIMIT 1")
        assert last == rev_ids[-1] == gw.config_rev
        used = {r for (r,) in sqlite3.connect(db).execute("SELECT DISTINCT config_rev FROM readings")}
        assert rev_ids[1] in used  # readings were stamped with the middle revision too
        assert len(MINI_DEVICES) == len(gw.routing.by_id)
    finally:
        gw.stop()


def test_sighup_reloads_a_running_gateway(tmp_path: Path, private_broker: Mosquitto, api_port: int) -> None:
    import signal

    from tests.support import GatewayProcess

    path = site(tmp_path, private_broker.port)
    original = path.read_text(encoding="utf-8")
    gp = GatewayProcess(path, tmp_path / "gateway.db", tmp_path, api_port).start()
    try:
        assert gp.proc is not None
        path.write_text(original.replace("building: b2}", "building: nowhere}"), encoding="utf-8")
        gp.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "reload refused" in gp.log.read_text(), 30), gp.log.read_text()[-2000:]
        path.write_text(original + "\n# edited\n", encoding="utf-8")
        gp.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "config reloaded" in gp.log.read_text(), 30), gp.log.read_text()[-2000:]
        assert gp.proc.poll() is None
    finally:
        assert gp.stop() == 0
