"""Broker set-ups other than the default: username/password with an ACL, TLS, refused plain text."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import paho.mqtt.publish as publish
import pytest

from edge_config import load_config
from gateway.app import Gateway
from gateway.ingest.mqtt import BrokerConnection, MqttConfigRefused, backoff_delay
from gateway.install.mosquitto import Mosquitto
from tests.conftest import write_site
from tests.support import count_readings, service_missing, wait_until


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        service_missing(tool)
    assert path is not None
    return path


def _with_mqtt(site: Path, block: str) -> None:
    text = site.read_text(encoding="utf-8")
    start = text.index("mqtt:\n")
    end = text.index("ingest:")
    site.write_text(text[:start] + block + text[end:], encoding="utf-8")


@pytest.fixture
def auth_broker(broker_dir: Path) -> Mosquitto:
    passwd = broker_dir / "passwd"
    subprocess.run([_need("mosquitto_passwd"), "-c", "-b", str(passwd), "gateway", "s3cret-Pa55"], check=True)
    acl = broker_dir / "acl"
    # The gateway may read device topics and write only its own status topics.
    acl.write_text(
        "user gateway\n"
        "topic read zigbee2mqtt/#\ntopic read application/#\ntopic read edge/v1/devices/#\n"
        "topic read $SYS/broker/publish/messages/dropped\ntopic write edge/gw-test/status\n"
        "topic write edge/gw-test/status/#\n"
        "user device\ntopic write zigbee2mqtt/#\ntopic write edge/v1/devices/#\n",
        encoding="utf-8",
    )
    subprocess.run([_need("mosquitto_passwd"), "-b", str(passwd), "device", "dev-Pa55"], check=True)
    m = Mosquitto(broker_dir, extra=f"password_file {passwd}\nacl_file {acl}\n")
    m.conf.write_text(m.conf.read_text().replace("allow_anonymous true", "allow_anonymous false"))
    m.start()
    yield m
    m.stop()


def test_username_password_from_environment_and_acl(
    tmp_path: Path, auth_broker: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = write_site(tmp_path, auth_broker.port)
    _with_mqtt(
        site,
        f"mqtt:\n  host: 127.0.0.1\n  port: {auth_broker.port}\n  username: gateway\n  password: ${{MQTT_PASSWORD}}\n",
    )
    monkeypatch.setenv("MQTT_PASSWORD", "s3cret-Pa55")
    gw = Gateway(load_config(site))
    gw.start()
    try:
        assert wait_until(lambda: gw.broker_connected, 10), gw.health()
        publish.single(
            "zigbee2mqtt/b1/door",
            json.dumps({"contact": False}),
            qos=1,
            hostname="127.0.0.1",
            port=auth_broker.port,
            auth={"username": "device", "password": "dev-Pa55"},
        )
        assert wait_until(lambda: count_readings(gw.store_path) == 1, 10)
        assert "s3cret" not in repr(gw.settings)
    finally:
        gw.stop()


def test_wrong_password_is_reported_not_connected(
    tmp_path: Path, auth_broker: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = write_site(tmp_path, auth_broker.port)
    _with_mqtt(
        site,
        f"mqtt:\n  host: 127.0.0.1\n  port: {auth_broker.port}\n  username: gateway\n  password: ${{MQTT_PASSWORD}}\n",
    )
    monkeypatch.setenv("MQTT_PASSWORD", "wrong-password")
    gw = Gateway(load_config(site))
    gw.start()
    try:
        session = gw.sessions[0]
        assert wait_until(lambda: session.last_error is not None and "refused" in session.last_error, 10)
        assert not gw.broker_connected
        assert "wrong-password" not in (session.last_error or "")
    finally:
        gw.stop()


def _make_certs(d: Path) -> tuple[Path, Path, Path]:
    openssl = _need("openssl")
    ca_key, ca, key, csr, crt = (d / n for n in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt"))
    run = lambda *a: subprocess.run([openssl, *a], check=True, capture_output=True)  # noqa: E731
    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        "2",
        "-subj",
        "/CN=edge-test-ca",
    )
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    ext = d / "ext.cnf"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(crt),
        "-days",
        "2",
        "-extfile",
        str(ext),
    )
    return ca, crt, key


def test_tls_with_a_private_ca(tmp_path: Path, broker_dir: Path) -> None:
    ca, crt, key = _make_certs(broker_dir)
    m = Mosquitto(broker_dir, extra=f"cafile {ca}\ncertfile {crt}\nkeyfile {key}\n")
    m.start()
    try:
        site = write_site(tmp_path, m.port)
        _with_mqtt(site, f"mqtt:\n  host: localhost\n  port: {m.port}\n  tls:\n    ca_file: {ca}\n")
        gw = Gateway(load_config(site))
        gw.start()
        try:
            assert wait_until(lambda: gw.broker_connected, 10), gw.health()
            publish.single(
                "zigbee2mqtt/b1/door",
                json.dumps({"contact": True}),
                qos=1,
                hostname="localhost",
                port=m.port,
                tls={"ca_certs": str(ca)},
            )
            assert wait_until(lambda: count_readings(gw.store_path) == 1, 10)
        finally:
            gw.stop()
    finally:
        m.stop()


def test_plain_text_to_a_remote_broker_is_refused_with_the_reason() -> None:
    s = BrokerConnection(host="192.0.2.10", port=1883, client_id="x")
    with pytest.raises(MqttConfigRefused, match="allow_plaintext_remote"):
        s.check_transport()
    BrokerConnection(host="192.0.2.10", port=1883, client_id="x", allow_plaintext_remote=True).check_transport()
    BrokerConnection(host="192.0.2.10", port=8883, client_id="x", ca_file="/ca.pem").check_transport()
    BrokerConnection(host="127.0.0.1", port=1883, client_id="x").check_transport()


def test_reconnect_backoff_is_capped_and_jittered() -> None:
    delays = [backoff_delay(a, 0.5, 30.0) for a in range(20) for _ in range(20)]
    assert all(0.25 <= d <= 30.0 for d in delays)  # equal jitter: never below half the nominal delay
    late = [backoff_delay(12, 0.5, 30.0) for _ in range(200)]
    assert len({round(d, 3) for d in late}) > 100, "jittered, not in lock step"
    assert max(late) > 20
