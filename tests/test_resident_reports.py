"""Residents report problems through a building's QR code: the installer prints it from the CLI, a
resident reports with a photo on a phone, the incident is dispatched to the building's grid worker,
and a gateway killed with kill -9 right after the page answered still has the report after the
restart. Photos are size-limited, re-encoded and stripped of metadata; abuse limits hold."""

from __future__ import annotations

import base64
import sqlite3
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from gateway import cli
from gateway.api import auth
from gateway.install.mosquitto import Mosquitto, free_port
from gateway.residents import photos
from tests.channels_receivers import SmsReceiver
from tests.resident_harness import PHONE, SMS_AUTH, ResidentEnv, chromium, page_errors, write_resident_site
from tests.support import ROOT, GatewayProcess

MARKER = b"GPS-SECRET-31.2304N-121.4737E"
XSS = "<img src=x onerror=window.__xss=1>楼道灯坏了"
ARTIFACTS = ROOT / "test-artifacts"


def jpeg_with_exif(w: int = 1200, h: int = 900) -> bytes:
    """A real JPEG carrying an APP1/Exif segment with a recognisable 'GPS' marker."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:, :, 1] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    cv2.putText(img, "LAMP", (50, 300), cv2.FONT_HERSHEY_SIMPLEX, 6, (255, 255, 255), 12)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    raw = buf.tobytes()
    payload = b"Exif\x00\x00" + b"II*\x00\x08\x00\x00\x00\x00\x00" + MARKER
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return raw[:2] + app1 + raw[2:]


def test_photo_is_reencoded_without_metadata_and_scaled() -> None:
    src = jpeg_with_exif(3000, 2000)
    assert MARKER in src
    out = photos.reencode(src, max_bytes=3_000_000, max_px=1600)
    assert MARKER not in out and out[:2] == b"\xff\xd8" and b"Exif" not in out
    img = cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_COLOR)
    assert max(img.shape[:2]) == 1600


def test_photo_refusals() -> None:
    with pytest.raises(photos.PhotoRefused):
        photos.reencode(b"GIF89a" + b"\x00" * 100, max_bytes=10_000, max_px=1600)
    with pytest.raises(photos.PhotoRefused):
        photos.reencode(jpeg_with_exif(), max_bytes=1000, max_px=1600)
    # a decompression bomb: a PNG header claiming 60000 x 60000 pixels is refused unread
    bomb = (
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", 60_000, 60_000) + b"\x08\x02\0\0\0"
    )
    with pytest.raises(photos.PhotoRefused, match="60000x60000"):
        photos.reencode(bomb + b"\x00" * 64, max_bytes=10_000, max_px=1600)
    with pytest.raises(photos.PhotoRefused):
        photos.reencode(b"\xff\xd8\xff\xe0\x00\x01", max_bytes=10_000, max_px=1600)  # damaged


@pytest.fixture
def env(tmp_path: Path, private_broker: Mosquitto, monkeypatch: pytest.MonkeyPatch) -> Iterator[ResidentEnv]:
    monkeypatch.setenv("RESIDENT_SMS_AUTH", SMS_AUTH)
    e = ResidentEnv(tmp_path, private_broker.port, per_qr=4, extra=_snapshots(tmp_path)).start()
    try:
        yield e
    finally:
        e.stop()


def _snapshots(tmp: Path) -> str:
    return f"cameras:\n  snapshots: {{path: '{tmp / 'snapshots'}'}}\n"


def _qr(config: Path, db: Path, capsys: pytest.CaptureFixture[str], building: str = "b1") -> str:
    rc = cli.main(["resident", "report-qr", "--config", str(config), "--building", building, "--store", str(db)])
    out = capsys.readouterr().out
    assert rc == 0 and any(ch in out for ch in "█▀▄")  # the QR code itself, drawn in the terminal
    return out.strip().splitlines()[-1]


def test_abuse_limits_per_qr_and_per_phone(env: ResidentEnv, capsys: pytest.CaptureFixture[str]) -> None:
    srv = env.srv
    assert srv.cfg.source_path is not None
    token = _qr(srv.cfg.source_path, srv.db, capsys).split("#", 1)[1]
    body = {"token": token, "type": "noise", "description": "楼上装修噪音"}
    with httpx.Client(base_url=srv.base) as anon:
        codes = [
            anon.post("/api/v1/resident/report", json={**body, "phone": "13700000001"}).status_code for _ in range(4)
        ]
        assert codes == [201, 201, 201, 429]  # 3 per phone per day
        r = anon.post("/api/v1/resident/report", json={**body, "phone": "13700000002"})
        assert r.status_code == 201  # another phone, same QR: the 4th of 4 per hour
        r = anon.post("/api/v1/resident/report", json={**body, "phone": "13700000003"})
        assert r.status_code == 429 and r.json()["code"] == "report_limit"
        bad = anon.post("/api/v1/resident/report", json={**body, "type": "no_such_type"})
        assert bad.status_code in (422, 429)
        assert anon.post("/api/v1/resident/report", json={**body, "photo": "!!notbase64"}).status_code == 422
    n = srv.read("SELECT count(*) FROM resident_reports")[0][0]
    assert n == 4  # refused reports were never stored


def test_report_with_photo_survives_kill9(
    tmp_path: Path, private_broker: Mosquitto, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RESIDENT_SMS_AUTH", SMS_AUTH)
    sms = SmsReceiver(SMS_AUTH)
    port = free_port()
    config = write_resident_site(tmp_path, private_broker.port, sms.base_url, port, extra=_snapshots(tmp_path))
    db = tmp_path / "gateway.db"
    photo = tmp_path / "lamp.jpg"
    photo.write_bytes(jpeg_with_exif())
    gw = GatewayProcess(config, db, tmp_path, port).start()
    try:
        url = _qr(config, db, capsys)
        assert url.startswith(f"http://127.0.0.1:{port}/r/report.html#report.")
        with chromium() as browser:
            ctx = browser.new_context(**PHONE)
            page = ctx.new_page()
            errors = page_errors(page)
            page.goto(url)
            page.wait_for_selector("body[data-state='ready']", timeout=15_000)
            assert page.text_content("#building") == "1号楼"
            page.check("input[name='type'][value='facility_broken']")
            page.check("input[name='where'][value='u1']")
            page.fill("#area", "3楼楼道")
            page.fill("#description", XSS)
            page.set_input_files("#photo", str(photo))
            page.wait_for_selector("#preview:not([hidden])", timeout=10_000)
            page.fill("#phone", "13700000009")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "resident-report.png"), full_page=True)
            page.click("#submit")
            page.wait_for_selector("body[data-state='done']", timeout=15_000)
            gw.kill9()  # right after the page said "received"
            reference = page.get_attribute("body", "data-reference")
            assert reference and reference in page.text_content("#result")
            assert page.evaluate("window.__xss") is None
            assert errors == []
            ctx.close()
        gw = GatewayProcess(config, db, tmp_path, port).start()
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            row = conn.execute(
                "SELECT id, building, unit, area, type, description, phone, photo, incident_id FROM resident_reports"
            ).fetchone()
            assert row is not None and f"R{row[0]}" == reference
            assert row[1:7] == ("b1", "u1", "3楼楼道", "facility_broken", XSS, "13700000009")
            iid = row[8]
            disp = conn.execute(
                "SELECT json_extract(data, '$.person'), json_extract(data, '$.rule') FROM incident_events"
                " WHERE incident_id=? AND kind='dispatched'",
                (iid,),
            ).fetchall()
            assert disp == [("gw1", "resident_report")]  # building b1 is in grid g1: its grid worker
            cat = conn.execute("SELECT category, grid, compound FROM incidents WHERE id=?", (iid,)).fetchone()
            assert cat == ("device_health", "g1", "cp1")
        finally:
            conn.close()
        stored = (tmp_path / "snapshots" / f"{row[7]}.jpg").read_bytes()
        assert MARKER not in stored and b"Exif" not in stored
        _row, tok = auth.cli_create(db, role="grid_worker", name="gw1", grids=["g1"])
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {tok}"}) as c:
            snaps = c.get(f"/api/v1/incidents/{iid}/snapshots").json()["items"]
            assert [s["id"] for s in snaps] == [row[7]]
            img = c.get(f"/api/v1/incidents/{iid}/snapshots/{row[7]}")
            assert img.status_code == 200 and img.content == stored
            detail = c.get(f"/api/v1/incidents/{iid}").json()
            assert "13700000009" not in str(detail)  # the reporter's phone is not shown to the grid worker
    finally:
        gw.stop()
        sms.close()


@pytest.fixture
def roomy(tmp_path: Path, private_broker: Mosquitto, monkeypatch: pytest.MonkeyPatch) -> Iterator[ResidentEnv]:
    monkeypatch.setenv("RESIDENT_SMS_AUTH", SMS_AUTH)
    e = ResidentEnv(tmp_path, private_broker.port, per_qr=1000, extra=_snapshots(tmp_path)).start()
    try:
        yield e
    finally:
        e.stop()


def test_report_body_is_fuzzed_without_5xx(roomy: ResidentEnv, capsys: pytest.CaptureFixture[str]) -> None:
    from hypothesis import HealthCheck, example, given, settings
    from hypothesis import strategies as st

    srv = roomy.srv
    assert srv.cfg.source_path is not None
    token = _qr(srv.cfg.source_path, srv.db, capsys).split("#", 1)[1]
    small = base64.b64encode(jpeg_with_exif(64, 48)).decode()
    values = st.one_of(
        st.none(), st.booleans(), st.integers(), st.text(max_size=60), st.lists(st.integers(), max_size=3)
    )
    fields = st.fixed_dictionaries(
        {},
        optional={
            "token": st.sampled_from([token, "x" * 12, token[:-2]]) | values,
            "type": st.sampled_from(["noise", "other", "sos"]) | values,
            "unit": st.sampled_from(["u1", "u9"]) | values,
            "area": values,
            "description": values,
            "phone": st.sampled_from(["13712345678", "+86 137 1234 5678"]) | values,
            "photo": st.sampled_from([small, "AAAA", base64.b64encode(b"\xff\xd8garbage").decode()]) | values,
            "extra": values,
        },
    )
    seen: list[int] = []

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=fields, raw=st.binary(max_size=200))
    @example(body={"token": token, "type": "noise", "description": "x", "photo": small}, raw=b"{}")
    # a forged link with an otherwise valid body: the 403 path, whatever hypothesis draws
    @example(body={"token": token[:-2], "type": "noise", "description": "x"}, raw=b"{}")
    def fuzz(body: dict[str, Any], raw: bytes) -> None:
        with httpx.Client(base_url=srv.base) as anon:
            for r in (
                anon.post("/api/v1/resident/report", json=body),
                anon.post("/api/v1/resident/report/view", json=body),
                anon.post("/api/v1/resident/report", content=raw, headers={"Content-Type": "application/json"}),
            ):
                assert r.status_code < 500, r.text
                seen.append(r.status_code)

    fuzz()
    assert 201 in seen and 422 in seen and 403 in seen
