"""Personal data (issue 10): retention periods, `edge-gateway resident forget`, site-file permissions."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.publish as publish
import pytest

from edge_config import load_config
from gateway import privacy
from gateway.app import Gateway
from gateway.core import store as st
from gateway.core.incidents import IncidentStore, Location, Trigger
from gateway.install.mosquitto import Mosquitto, free_port
from gateway.privacy import (
    ANON_PREFIX,
    ConfigPermissionError,
    RetentionProcessor,
    check_config_permissions,
    edit_config_forget,
)
from gateway.tickets.scorecard import compute
from tests.conftest import write_site
from tests.support import ROOT, wait_until

DAY = 86_400_000


def _q(db: Path, sql: str, *args: object) -> list[tuple]:  # type: ignore[type-arg]
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def test_retention_deletes_and_anonymises_in_slices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(privacy, "SCAN", 1000)
    site = write_site(tmp_path, 1883)
    with site.open("a", encoding="utf-8") as f:
        f.write("privacy: {readings_personal_days: 7, closed_incidents_days: 30, dead_letters_days: 3}\n")
    cfg = load_config(site)
    store = st.Store(tmp_path / "gateway.db", st.Quota(64 << 20, 4 << 20))
    c = store.conn
    now = st.now_ms()
    c.execute("BEGIN IMMEDIATE")
    rev = store.config_rev_id("x", 1)
    rows = []
    # ids grow with receive time, as in the pipeline
    for age_days, dev, res in [(10, "pir-r1", "r1"), (10, "door-b1", None)] * 3000 + [(1, "pir-r1", "r1")] * 3000:
        rows.append((now - age_days * DAY, now - age_days * DAY, dev, "state", '{"occupancy":true}', 0, 0, rev, res))
    c.executemany(
        "INSERT INTO readings(rx_ms, ts_ms, device_id, kind, vals, flags, msg_key, config_rev, resident_id)"
        " VALUES (?,?,?,?,?,?,?,?,?)",
        rows,
    )
    incs = IncidentStore(cfg.gateway.id, rev)
    old = incs.raise_or_repeat(
        c,
        None,
        Trigger(
            "fall-r1|fall",
            "eldercare",
            "fall",
            "critical",
            now - 60 * DAY,
            ["fall-r1"],
            Location(grid="g1", building="b1"),
            "r1",
            {"device": "fall-r1", "values": {"fall": True}},
        ),
        now - 60 * DAY,
    ).incident_id
    incs.append_event(c, None, old, "comment", now - 60 * DAY, {"note": "张阿姨 摔倒在卫生间", "reason": "跌倒"})
    c.execute("UPDATE incidents SET state='closed', open_key=NULL, updated_ms=? WHERE id=?", (now - 40 * DAY, old))
    c.execute(
        "INSERT INTO dead_letters(rx_ms, topic, reason, detail, payload_len, payload_excerpt) VALUES (?,?,?,?,?,?)",
        (now - 5 * DAY, "edge/v1/devices/fall-r1/state", "missing_field", "", 3, b"{}"),
    )
    c.execute(
        "INSERT INTO access_log(ts_ms, role, reason, resident_id, via) VALUES (?,?,?,?,?)",
        (now - 400 * DAY, "eldercare_worker", "personal_view", "r1", "detail"),
    )
    c.execute("COMMIT")

    proc = RetentionProcessor(cfg)
    passes = 0
    while True:
        c.execute("BEGIN IMMEDIATE")
        behind = proc.run(c, now)
        c.execute("COMMIT")
        passes += 1
        if not behind:
            break
    assert passes >= 6  # 6,000 old rows: several scan slices
    left = dict(c.execute("SELECT device_id || ':' || (rx_ms < ?), count(*) FROM readings GROUP BY 1", (now - DAY,)))
    assert left == {"door-b1:1": 3000, "pir-r1:0": 3000}  # only old *personal* readings went
    inc = c.execute("SELECT resident_id, readings, category, type, state FROM incidents WHERE id=?", (old,)).fetchone()
    assert inc[0].startswith(ANON_PREFIX) and inc[1] == "[]" and inc[2:] == ("eldercare", "fall", "closed")
    data = [json.loads(d) for (d,) in c.execute("SELECT data FROM incident_events WHERE incident_id=?", (old,))]
    assert all("note" not in d and "reason" not in d and "readings" not in d for d in data)
    assert c.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == 0
    assert c.execute("SELECT count(*) FROM access_log").fetchone()[0] == 0
    assert proc.totals["readings"] == 3000
    # nothing left to do: a second full pass changes nothing
    c.execute("BEGIN IMMEDIATE")
    assert proc.run(c, now) is False
    c.execute("COMMIT")
    assert proc.totals["readings"] == 3000
    store.close()


SYNC_PERSONAL = """
sync:
  enabled: true
  url: http://127.0.0.1:{port}
  send_personal: true
  backoff_min_s: 5
  backoff_max_s: 10
"""


def test_resident_forget_while_the_gateway_runs(tmp_path: Path, private_broker: Mosquitto) -> None:
    site = write_site(tmp_path, private_broker.port)
    with site.open("a", encoding="utf-8") as f:
        f.write(SYNC_PERSONAL.format(port=free_port()))  # nobody listens: the outbox keeps the lines
    os.chmod(site, 0o600)
    cfg = load_config(site)
    gw = Gateway(cfg)
    gw.start()
    db = gw.store_path
    host, port = "127.0.0.1", private_broker.port
    try:
        assert wait_until(lambda: gw.broker_connected, 10)
        msgs = [("zigbee2mqtt/b1/u1/pir", json.dumps({"occupancy": i % 2 == 0, "battery": 90})) for i in range(20)] + [
            ("zigbee2mqtt/b1/door", json.dumps({"contact": True, "battery": 80})),
            ("edge/v1/devices/fall-r1/state", '{"ts": 1}'),  # dead letter from the resident's device
            ("zigbee2mqtt/b1/door", "{not json"),  # dead letter of a common-area device
            ("zigbee2mqtt/b1/u1/sos", json.dumps({"action": "emergency"})),
        ]
        publish.multiple([{"topic": t, "payload": p, "qos": 1} for t, p in msgs], hostname=host, port=port)
        assert wait_until(lambda: _q(db, "SELECT id FROM incidents WHERE type='sos'") != [], 10)
        (iid,) = _q(db, "SELECT id FROM incidents WHERE type='sos'")[0]
        store = IncidentStore(cfg.gateway.id, gw.config_rev)

        def personal(conn: sqlite3.Connection, result: object, now: int) -> None:
            store.append_event(conn, result, iid, "comment", now, {"comment": "张阿姨说头晕", "rating": 4})
            conn.execute(
                "INSERT INTO access_log(ts_ms, token_id, role, reason, incident_id, resident_id, fields, via)"
                " VALUES (?, 't1', 'eldercare_worker', 'personal_view', ?, 'r1', '[\"name\"]', 'detail')",
                (now, iid),
            )
            conn.execute(
                "INSERT INTO personal_releases(ts_ms, incident_id, resident_id, recipient, channel, fields)"
                " VALUES (?, ?, 'r1', 'ec1', 'api', '[\"name\",\"phone\"]')",
                (now, iid),
            )

        gw.pipeline.call(personal).result(10)
        assert wait_until(lambda: len(_q(db, "SELECT id FROM readings WHERE resident_id='r1'")) >= 21, 10)
        assert wait_until(lambda: _q(db, "SELECT count(*) FROM dead_letters")[0][0] == 2, 10)
        assert _q(db, "SELECT count(*) FROM outbox WHERE line LIKE '%device=pir-r1,%'")[0][0] >= 20
        # the SOS press: a life-safety reading, queued with the incident events (prio 0)
        assert _q(db, "SELECT prio FROM outbox WHERE line LIKE '%device=sos-r1,%'") == [(0,)]
        snaps = tmp_path / "data" / "snapshots"
        snaps.mkdir(parents=True)
        ts = st.now_ms()
        (snaps / f"pir-r1-{ts:013d}-z1-1.jpg").write_bytes(b"\xff\xd8resident")
        (snaps / f"cam9-{ts:013d}-z1-2.jpg").write_bytes(b"\xff\xd8other")
        period = dt.date.today().strftime("%Y-%m")
        card_before = compute(sqlite3.connect(db), cfg, period).rows
        t0 = time.monotonic()
        out = subprocess.run(
            [sys.executable, "-m", "gateway", "resident", "forget", "r1", "--config", str(site), "--yes"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        took = time.monotonic() - t0
        assert out.returncode == 0, out.stderr
        text = out.stdout
        assert "readings deleted: 2" in text and "incidents anonymised (statistics kept): 1" in text
        assert "dead letters deleted: 1" in text and "snapshot files deleted: 1" in text
        assert "REMINDER" in text and "residents[] entry" in text
        assert "张阿姨" not in text
        # the gateway kept running meanwhile and still answers
        publish.single("zigbee2mqtt/b1/door", json.dumps({"contact": False}), qos=1, hostname=host, port=port)
        assert wait_until(lambda: _q(db, "SELECT count(*) FROM readings WHERE device_id='door-b1'")[0][0] >= 2, 10)
        assert took < 30
    finally:
        gw.stop()
    assert _q(db, "SELECT count(*) FROM readings WHERE resident_id='r1' OR device_id IN ('pir-r1','sos-r1')") == [(0,)]
    rid, readings, cat, typ = _q(db, "SELECT resident_id, readings, category, type FROM incidents WHERE id=?", iid)[0]
    assert rid.startswith(ANON_PREFIX) and readings == "[]" and (cat, typ) == ("eldercare", "sos")
    events = " ".join(d for (d,) in _q(db, "SELECT data FROM incident_events WHERE incident_id=?", iid))
    assert "张阿姨" not in events and '"rating":4' in events
    assert _q(db, "SELECT count(*) FROM outbox WHERE line LIKE '%device=pir-r1,%' OR line LIKE '%device=sos-r1,%'") == [
        (0,)
    ]
    assert _q(db, "SELECT count(*) FROM outbox WHERE line LIKE '%device=door-b1,%'")[0][0] >= 1
    assert _q(db, "SELECT sum(rows) FROM outbox_totals") == _q(db, "SELECT count(*) FROM outbox")
    assert [t for (t,) in _q(db, "SELECT topic FROM dead_letters")] == ["zigbee2mqtt/b1/door"]
    assert _q(db, "SELECT count(*) FROM access_log WHERE resident_id='r1'") == [(0,)]
    assert _q(db, "SELECT count(*), min(resident_id) FROM access_log") == [(1, rid)]  # the fact stays
    assert _q(db, "SELECT resident_id FROM personal_releases") == [(rid,)]
    assert _q(db, "SELECT last_values FROM devices WHERE device_id='pir-r1'") == [("{}",)]
    assert sorted(p.name.split("-")[0] for p in snaps.iterdir()) == ["cam9"]
    assert compute(sqlite3.connect(db), cfg, period).rows == card_before  # the scorecard is unchanged
    # --config-edit removes the stanza and the devices' links; the file still loads
    assert edit_config_forget(site, "r1")
    assert (os.stat(site).st_mode & 0o777) == 0o600
    cfg2 = load_config(site)
    assert cfg2.resident("r1") is None and all(d.resident is None for d in cfg2.devices)


def test_config_permissions_warn_or_refuse(tmp_path: Path) -> None:
    site = write_site(tmp_path, 1883)
    os.chmod(site, 0o644)
    warning = check_config_permissions(site, "warn")
    assert warning is not None and "chmod 600" in warning
    with pytest.raises(ConfigPermissionError):
        check_config_permissions(site, "strict")
    with site.open("a", encoding="utf-8") as f:
        f.write("privacy: {config_permissions: strict}\n")
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "run", "--config", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "refusing to start" in out.stderr and "chmod 600" in out.stderr
    os.chmod(site, 0o600)
    assert check_config_permissions(site, "strict") is None
