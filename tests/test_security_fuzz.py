"""Every input hostile (issue 10): the config loader and the real ingest pipeline under fuzzing.

- Hypothesis over the config loader: arbitrary text, arbitrary nested structures (also spliced into
  a valid site file), deep nesting -> only ``ConfigError``, never another exception.
- 100,000+ generated payloads through the REAL pipeline of a running gateway (in-process
  ``Pipeline.submit``) plus a share through the real Mosquitto broker (QoS 1): arbitrary bytes,
  arbitrary JSON, deep nesting, near-valid driver payloads on real topics, unknown topics. Every one
  must end as a reading, a counted skip or a *typed* dead letter (never ``driver_bug`` /
  ``pipeline_error``), the gateway must still answer, and an SOS published afterwards must still
  raise an ``sos`` incident within a few seconds. The figures are printed (docs/security.md).
"""

from __future__ import annotations

import copy
import json
import math
import random
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import paho.mqtt.publish as publish
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from edge_config import ConfigError, load_config
from gateway.app import Gateway
from gateway.ingest.mqtt import Inbound
from gateway.install.mosquitto import Mosquitto
from tests.conftest import write_site
from tests.support import wait_until

PIPELINE_PAYLOADS = 100_000
BROKER_PAYLOADS = 10_000
FUZZ_SESSION = 7  # not an MQTT session: the pipeline's acknowledgements go nowhere

# --------------------------------------------------------------------------------------------
# config loader

_SITE_TEXT: str | None = None


def _valid_site(tmp: Path) -> str:
    global _SITE_TEXT
    if _SITE_TEXT is None:
        _SITE_TEXT = write_site(tmp, 1883).read_text(encoding="utf-8")
    return _SITE_TEXT


def _load_text(path: Path, text: str | bytes) -> None:
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    else:
        path.write_bytes(text)
    try:
        load_config(path, env={"MQTT_PASSWORD": "x"})
    except ConfigError as exc:
        assert exc.issues  # every refusal says why
        for issue in exc.issues:
            issue.format()


json_values = hs.recursive(
    hs.none() | hs.booleans() | hs.integers() | hs.floats() | hs.text(max_size=20),
    lambda children: hs.lists(children, max_size=4) | hs.dictionaries(hs.text(max_size=10), children, max_size=4),
    max_leaves=30,
)
SECTIONS = ["version", "gateway", "mqtt", "ingest", "store", "site", "residents", "staff", "devices", "privacy", "api"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=hs.text(max_size=400) | hs.binary(max_size=400).map(lambda b: b.decode("latin-1")))
def test_config_loader_arbitrary_text(tmp_path: Path, text: str) -> None:
    _load_text(tmp_path / "fuzz.yaml", text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=hs.binary(max_size=400))
def test_config_loader_arbitrary_bytes(tmp_path: Path, raw: bytes) -> None:
    _load_text(tmp_path / "fuzz.yaml", raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(obj=json_values)
def test_config_loader_arbitrary_structures(tmp_path: Path, obj: Any) -> None:
    _load_text(tmp_path / "fuzz.yaml", json.dumps(obj))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(section=hs.sampled_from(SECTIONS), obj=json_values)
def test_config_loader_hostile_section_in_a_valid_file(tmp_path: Path, section: str, obj: Any) -> None:
    """A valid site file whose one section is replaced by an arbitrary value (JSON is YAML)."""
    text = _valid_site(tmp_path)
    lines = [ln for ln in text.splitlines() if not ln.startswith(f"{section}:")]
    _load_text(tmp_path / "fuzz.yaml", "\n".join(lines) + f"\n{section}: {json.dumps(obj)}\n")


def test_config_loader_deep_nesting(tmp_path: Path) -> None:
    site = _valid_site(tmp_path)
    for text in [
        "[" * 100_000,
        "{" * 100_000,
        '{"a":' * 20_000 + "1" + "}" * 20_000,
        "- " * 50_000 + "x",
        site + "rules: " + "[" * 5000 + "]" * 5000 + "\n",
        site + "privacy: " + '{"a": ' * 900 + "1" + "}" * 900 + "\n",
        "a: &a [1]\n"
        + "".join(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}" if i else "*a"] * 9) + "]\n" for i in range(9)),
    ]:
        _load_text(tmp_path / "deep.yaml", text)


# --------------------------------------------------------------------------------------------
# payload generator (deterministic: the figures in docs/security.md are reproducible)

TOPICS = {  # real topics of tests.conftest.MINI_DEVICES (not the SOS button: the final SOS must be new)
    "zigbee2mqtt/b1/door": {"contact": True, "battery": 80, "linkquality": 90},
    "zigbee2mqtt/b1/u1/pir": {"occupancy": True, "battery": 70, "illuminance": 12},
    "zigbee2mqtt/0x00158d0000000002/availability": {"state": "online"},
    "zigbee2mqtt/bridge/state": {"state": "online"},
    "edge/v1/devices/fall-r1/state": {"ts": 0, "values": {"presence": True, "fall": False}},
    "edge/v1/devices/fall-r1/event": {"ts": 0, "event": "fall", "values": {"fall": True}},
    "edge/v1/devices/acc-b2/event": {"ts": 0, "event": "access_denied", "values": {"card": "12"}},
    "edge/v1/devices/acc-b2/availability": {"online": True},
    "application/app/device/70b3d57ed0000001/event/up": {
        "deviceInfo": {"devEui": "70b3d57ed0000001"},
        "fPort": 2,
        "data": "AQ==",
        "object": {"occupied": True},
    },
}
OTHER_TOPICS = [
    "zigbee2mqtt/unknown/thing",
    "application/x/device/ffffffffffffffff/event/up",
    "random/topic",
    "edge/v1",
]
KEYS = ["contact", "occupancy", "battery", "action", "values", "ts", "event", "state", "online", "presence", "fall",
        "heart_rate", "data", "fPort", "object", "deviceInfo", "devEui", "time", "voltage", "", "__proto__"]  # fmt: skip  # noqa: E501
ODD = [None, True, -1, 0, 2**63, -(2**64), 1e308, "NaN", "", "x" * 300, "\u0000", "\ud7ff\ue000", [], {}, [[[]]], 3.5]


def _odd(r: random.Random) -> Any:
    return copy.deepcopy(r.choice(ODD))  # never share a container between payloads


def _rand_json(r: random.Random, depth: int = 0) -> Any:
    k = r.random()
    if depth > 4 or k < 0.35:
        return _odd(r) if r.random() < 0.5 else r.choice([r.randint(-(10**6), 10**6), r.random(), "on", False])
    if k < 0.65:
        return [_rand_json(r, depth + 1) for _ in range(r.randint(0, 4))]
    return {r.choice(KEYS): _rand_json(r, depth + 1) for _ in range(r.randint(0, 5))}


def _mutate(r: random.Random, obj: dict[str, Any], now_ms: int) -> dict[str, Any]:
    out = json.loads(json.dumps(obj))
    if "ts" in out:
        out["ts"] = r.choice([now_ms, now_ms - 10**9, 0, -1, "yesterday", 10**20, None])
    for _ in range(r.randint(1, 3)):
        op = r.random()
        target = out["values"] if isinstance(out.get("values"), dict) and r.random() < 0.5 else out
        key = r.choice(list(target) or KEYS)
        if op < 0.4:
            target[key] = _odd(r)
        elif op < 0.6:
            target.pop(key, None)
        elif op < 0.8:
            target[r.choice(KEYS)] = _rand_json(r, 2)
        else:
            target[key] = r.choice([math.inf, -math.inf, math.nan, 101, -5, 10**9])
    return out


def payloads(n: int, seed: int, now_ms: int) -> tuple[list[tuple[str, bytes]], Counter[str]]:
    r = random.Random(seed)
    topics = list(TOPICS)
    out: list[tuple[str, bytes]] = []
    kinds: Counter[str] = Counter()
    deep = [b"[" * 60_000, b"[" * 100_000, b'{"a":' * 12_000, b"[" * 1000 + b"]" * 1000, b'{"values":' * 5000]
    for _ in range(n):
        topic = r.choice(topics) if r.random() < 0.9 else r.choice(OTHER_TOPICS)
        k = r.random()
        if k < 0.25:
            kind, body = "bytes", r.randbytes(r.randint(0, 300))
        elif k < 0.5:
            kind, body = "json", json.dumps(_rand_json(r), allow_nan=True).encode()
        elif k < 0.52:
            kind, body = "deep", r.choice(deep)
        elif k < 0.97:
            base = TOPICS.get(topic, TOPICS["zigbee2mqtt/b1/door"])
            kind, body = "near_valid", json.dumps(_mutate(r, base, now_ms), allow_nan=True).encode()
        else:
            kind, body = "valid", json.dumps({**TOPICS.get(topic, {}), "ts": now_ms}).encode()
        kinds[kind] += 1
        out.append((topic, body))
    return out, kinds


# --------------------------------------------------------------------------------------------
# the real pipeline


def _counters(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return {k: int(v) for k, v in conn.execute("SELECT name, value FROM counters")}
    finally:
        conn.close()


def _incidents(db: Path, typ: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute("SELECT count(*) FROM incidents WHERE type=?", (typ,)).fetchone()[0])
    finally:
        conn.close()


def test_100k_hostile_payloads_through_the_real_pipeline(tmp_path: Path, private_broker: Mosquitto) -> None:
    site = write_site(tmp_path, private_broker.port)
    gw = Gateway(load_config(site))
    gw.start()
    db = gw.store_path
    t0 = time.monotonic()
    try:
        assert wait_until(lambda: gw.broker_connected, 10)
        now = int(time.time() * 1000)
        direct, kinds = payloads(PIPELINE_PAYLOADS, seed=10, now_ms=now)
        via_broker, kinds_b = payloads(BROKER_PAYLOADS, seed=11, now_ms=now)
        base = gw.pipeline.committed_total
        for i, (topic, body) in enumerate(direct):
            rx = int(time.time() * 1000)
            gw.pipeline.submit(
                Inbound(FUZZ_SESSION, 0, i & 0xFFFF, 1, topic, body, False, False, rx, time.monotonic_ns())
            )
            if i % 5000 == 4999:  # bounded queue: never more than ~5,000 ahead of the pipeline
                assert wait_until(lambda i=i: gw.pipeline.committed_total - base >= i - 5000, 60)
        assert wait_until(lambda: gw.pipeline.committed_total - base >= PIPELINE_PAYLOADS, 120)
        t_direct = time.monotonic() - t0
        assert gw.health()["store_writable"], gw.health()
        t1 = time.monotonic()
        for k in range(0, BROKER_PAYLOADS, 1000):
            publish.multiple(
                [{"topic": t, "payload": p, "qos": 1} for t, p in via_broker[k : k + 1000]],
                hostname="127.0.0.1",
                port=private_broker.port,
            )
        assert wait_until(lambda: gw.pipeline.committed_total - base >= PIPELINE_PAYLOADS + BROKER_PAYLOADS, 60)
        t_broker = time.monotonic() - t1
        # the gateway still answers, and an SOS still raises an incident in time
        health = gw.health()
        assert health["broker_connected"] and health["store_writable"], health
        t_sos = time.monotonic()
        publish.single(
            "zigbee2mqtt/b1/u1/sos",
            json.dumps({"action": "emergency"}),
            qos=1,
            hostname="127.0.0.1",
            port=private_broker.port,
        )
        assert wait_until(lambda: _incidents(db, "sos") == 1, 5), "SOS not raised within 5 s after the fuzzing"
        sos_s = time.monotonic() - t_sos
    finally:
        gw.stop()
    c = _counters(db)
    dead = {k.split(".", 1)[1]: v for k, v in c.items() if k.startswith("dead_letters.")}
    assert "driver_bug" not in dead and "pipeline_error" not in dead, dead
    total = PIPELINE_PAYLOADS + BROKER_PAYLOADS + 1
    assert c["messages_committed"] >= total
    print(
        f"\nfuzzed {PIPELINE_PAYLOADS} payloads in-process ({t_direct:.1f} s) + {BROKER_PAYLOADS} through the broker "
        f"({t_broker:.1f} s); kinds {dict(kinds + kinds_b)}; dead letters by reason {dict(sorted(dead.items()))}; "
        f"readings {c.get('messages_committed', 0) - sum(dead.values())} accepted or skipped; SOS incident after "
        f"{sos_s:.2f} s"
    )
