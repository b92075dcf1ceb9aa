"""Meta-tests over the whole driver table: every entry, hostile inputs, property-based fuzzing.

A new driver only has to add its plausible topics to TOPICS below; everything else here then
runs over it. The index tests find every driver module on their own and check that it is in the
table, documented in docs/drivers.md and covered by payload samples in tests/test_drivers.py.
"""

from __future__ import annotations

import base64
import copy
import importlib
import json
import math
import pkgutil
import re
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import drivers
from drivers import DRIVERS
from drivers.base import (
    AVAILABILITY,
    BRIDGE,
    CANONICAL_VALUES,
    EVENT,
    STATE,
    TS_MAX_MS,
    TS_MIN_MS,
    DecodeError,
    DriverSpec,
    Reading,
    filter_base,
)
from edge_config.schema import check_topic_filter
from gateway.ingest.routing import _spec_for

EUI = "70b3d57ed0051234"
# Per driver: its main data topic first (must parse the payload), then other plausible topics.
TOPICS: dict[str, list[str]] = {
    "zigbee2mqtt": [
        "zigbee2mqtt/b3/u1/sos",
        "zigbee2mqtt/door",
        "zigbee2mqtt/door/availability",
        "zigbee2mqtt/bridge/state",
        "zigbee2mqtt/bridge/devices",
        "zigbee2mqtt/bridge/event",
        "zigbee2mqtt/bridge/info",
        "zigbee2mqtt/door/set",
        "zigbee2mqtt",
    ],
    "chirpstack": [
        f"application/app-1/device/{EUI}/event/up",
        f"application/app-1/device/{EUI}/event/status",
        f"application/app-1/device/{EUI}/event/join",
        f"application/app-1/device/{EUI}/event/whatever",
        "application/app-1/device/zz/event/up",
    ],
    "native": [
        "edge/v1/devices/radar-1/state",
        "edge/v1/devices/radar-1/event",
        "edge/v1/devices/radar-1/availability",
        "edge/v1/devices/radar-1/command",
        "edge/v1/devices/radar 1/state",
    ],
    "frigate": [
        "frigate/events",
        "frigate/reviews",
        "frigate/fire_lane_1/car",
        "frigate/lot_cam/person",
        "frigate/lot_cam/car/snapshot",
        "frigate/available",
        "frigate",
    ],
}
ALL_TOPICS = [(name, t) for name, topics in TOPICS.items() for t in topics]
DATA_TOPICS = [(name, topics[0]) for name, topics in TOPICS.items()]

HOSTILE: list[bytes] = [
    b"",
    b" ",
    b"\xff\xfe",
    b"\x00",
    b"\xc3\x28",
    b"null",
    b"true",
    b"0",
    b"-0",
    b"[]",
    b"{}",
    b"1e999",
    b"-1e999",
    b"NaN",
    b"Infinity",
    b'"str"',
    b'"online"',
    b"online",
    b"offline",
    b"[" * 100_000,
    b"{" * 1_000_000,
    b'{"a":' * 50_000,
    b"]" * 1000,
    b"1" * 5000,  # int longer than Python's str->int digit limit
    b'{"battery": "87", "temperature": "21.5", "contact": "true"}',
    b'{"battery": NaN, "contact": true}',
    b'{"battery": 1e999}',
    b'{"battery": 1' + b"0" * 5000 + b"}",
    b'{"contact": "\\ud800"}',
    b'{"values": {"contact": "\\u0000"}}',
    b'{"values": {"battery": "1e999"}}',
    b'{"event": "sos", "values": []}',
    b'{"event": ["sos"]}',
    b'{"device": {"ieeeAddr": 5}, "contact": true}',
    b'{"device": "x", "contact": true}',
    b'{"state": {"state": "online"}}',
    b'{"online": [true]}',
    b'[{"friendly_name": null, "ieee_address": "0x1"}]',
    b'{"deviceInfo": {"devEui": "70b3d57ed0051234"}, "fPort": 2, "data": "////"}',
    b'{"deviceInfo": {"devEui": "70b3d57ed0051234"}, "fPort": 2, "data": "\xc3\xa9"}',
    b'{"deviceInfo": {"devEui": "70b3d57ed0051234"}, "fPort": 2, "data": "\\u00e9AAA"}',
    b'{"deviceInfo": {"devEui": "70b3d57ed0051234"}, "object": {"battery": true}}',
    b'{"deviceInfo": {"devEui": "70b3d57ed0051234"}, "time": "9999-12-31T23:59:59Z"}',
    b'{"deviceInfo": {"devEui": "70b3d57ed0051234"}, "time": "0001-01-01T00:00:00+14:00"}',
    b'{"deviceInfo": {"devEui": "70b3d57ed0051234"}, "batteryLevel": NaN}',
    b'{"ts": -99999999999999999999999, "values": {"contact": true}}',
    b'{"ts": "2024-05-01T10:00:00+25:00", "values": {"contact": true}}',
    b'{"values": {"contact": true}, "meta": {"n": 1e999}}',
    b'{"values": {"contact": true}, "meta": {"n": 123456789012345678901234567890}}',
    '{"values": {"temperature": "\u0661\u0662"}}'.encode(),
    b"\xef\xbb\xbf{}",  # UTF-8 BOM
]

ALLOWED_EXTRA_VALUES = {"action", "devices", "network"}
KINDS = {STATE, EVENT, AVAILABILITY, BRIDGE}


def check_readings(out: Any) -> None:
    """The output contract: a list of well-formed canonical readings."""
    assert type(out) is list
    for r in out:
        assert type(r) is Reading
        assert r.kind in KINDS
        assert isinstance(r.device, str) and r.device
        assert r.ts_ms is None or (type(r.ts_ms) is int and TS_MIN_MS <= r.ts_ms <= TS_MAX_MS)
        assert isinstance(r.meta, dict)
        for key, v in r.values.items():
            if key in ALLOWED_EXTRA_VALUES:
                continue
            assert key in CANONICAL_VALUES, key
            if CANONICAL_VALUES[key] is bool:
                assert type(v) is bool, (key, v)
            else:
                assert type(v) in (int, float), (key, v)
                assert math.isfinite(v), (key, v)
        json.dumps(r.values, allow_nan=False)  # serialisable, no NaN
        json.dumps(r.meta, allow_nan=False)


def run(spec: DriverSpec, topic: str, payload: bytes) -> list[Reading] | DecodeError:
    try:
        out = spec.decode(topic, payload)
    except DecodeError as exc:
        assert exc.reason in DecodeError.REASONS
        return exc
    check_readings(out)
    return out


# ---------------------------------------------------------------- table shape


def test_every_driver_has_topics_here() -> None:
    assert set(TOPICS) == set(DRIVERS)


@pytest.mark.parametrize("key", sorted(DRIVERS))
def test_entry_shape(key: str) -> None:
    spec = DRIVERS[key]
    assert isinstance(spec, DriverSpec)
    assert spec.name == key
    assert spec.description.strip() and len(spec.description) > 20
    assert isinstance(spec.default_topics, tuple) and spec.default_topics
    for flt in spec.default_topics:
        levels = flt.split("/")
        assert all(levels), flt
        assert "#" not in flt[:-1], flt
        assert all(lvl in ("+", "#") or ("+" not in lvl and "#" not in lvl) for lvl in levels), flt
    assert callable(spec.decode) and spec.decode.__module__.startswith("drivers.")
    assert isinstance(spec.normalise_address(" Ab "), str)


@pytest.mark.parametrize("key", sorted(DRIVERS))
def test_default_topics_match_the_data_topic(key: str) -> None:
    data_topic = TOPICS[key][0]

    def matches(flt: str, topic: str) -> bool:
        f, t = flt.split("/"), topic.split("/")
        for i, lvl in enumerate(f):
            if lvl == "#":
                return True
            if i >= len(t) or (lvl != "+" and lvl != t[i]):
                return False
        return len(f) == len(t)

    assert any(matches(f, data_topic) for f in DRIVERS[key].default_topics)


# ---------------------------------------------------------------- index: every driver module is wired up

ROOT = Path(__file__).resolve().parent.parent
DRIVERS_DOC = ROOT / "docs" / "drivers.md"
PAYLOAD_TESTS = Path(__file__).resolve().parent / "test_drivers.py"
PAYLOADS = Path(__file__).resolve().parent / "payloads"


def _driver_modules() -> list[ModuleType]:
    """Every module of the drivers package that defines its own ``decode`` (helpers such as
    base and parking_codec do not)."""
    found = []
    for info in pkgutil.iter_modules(drivers.__path__):
        mod = importlib.import_module(f"drivers.{info.name}")
        fn = getattr(mod, "decode", None)
        if callable(fn) and fn.__module__ == mod.__name__:
            found.append(mod)
    return found


DRIVER_MODULES = {getattr(m, "NAME", m.__name__.rpartition(".")[2]): m for m in _driver_modules()}


def test_driver_modules_are_found() -> None:
    assert {"zigbee2mqtt", "chirpstack", "native", "frigate"} <= set(DRIVER_MODULES)


@pytest.mark.parametrize("name", sorted(DRIVER_MODULES))
def test_driver_module_is_registered(name: str) -> None:
    assert name in DRIVERS, f"drivers/{DRIVER_MODULES[name].__name__[8:]}.py is not in drivers.DRIVERS"
    assert DRIVERS[name].decode is DRIVER_MODULES[name].decode


@pytest.mark.parametrize("name", sorted(DRIVER_MODULES))
def test_driver_module_is_documented(name: str) -> None:
    headings = [
        ln.lstrip("#").strip().lower() for ln in DRIVERS_DOC.read_text("utf-8").splitlines() if ln.startswith("## ")
    ]
    assert any(name in h for h in headings), f"docs/drivers.md has no '## ' section naming {name}"


@pytest.mark.parametrize("name", sorted(DRIVER_MODULES))
def test_driver_module_has_payload_tests(name: str) -> None:
    samples = sorted(p.name for p in (PAYLOADS / name).glob("*") if p.is_file()) if (PAYLOADS / name).is_dir() else []
    assert samples, f"no published-format payload samples under tests/payloads/{name}/"
    source = PAYLOAD_TESTS.read_text("utf-8")
    # tests/test_drivers.py reads samples through sample("<driver>/<file>") or a helper built on it
    assert re.search(r'sample\(f?"' + re.escape(name) + "/", source), f"tests/test_drivers.py reads no {name} sample"
    assert any(f'{s}"' in source for s in samples), f"no tests/payloads/{name}/ file is used by tests/test_drivers.py"


@pytest.mark.parametrize("key", sorted(DRIVERS))
def test_entry_facts(key: str) -> None:
    spec = DRIVERS[key]
    assert spec.description.strip() and "\n" not in spec.description, "help text is one non-empty line"
    assert spec.address_help.strip() and "\n" not in spec.address_help
    for flt in spec.default_topics:
        assert check_topic_filter(flt) == flt
    if spec.address_pattern is not None:
        re.compile(spec.address_pattern)
    for flt in spec.default_topics:
        for friendly in (None, "b3/u1/sos"):
            for topic in spec.safety_topics(flt, "dev-1", friendly):
                assert check_topic_filter(topic) == topic, topic
                assert "#" not in topic, "a life-safety filter names one device"


@pytest.mark.parametrize(
    ("key", "source_filter", "address", "friendly", "expected"),
    [
        ("zigbee2mqtt", "zigbee2mqtt/#", "0x00158d0001a2b3c4", "b3/u1/sos", ("zigbee2mqtt/b3/u1/sos",)),
        ("zigbee2mqtt", "site1/z2m/#", "0x00158d0001a2b3c4", "sos", ("site1/z2m/sos",)),
        ("zigbee2mqtt", "zigbee2mqtt/#", "0x00158d0001a2b3c4", None, ()),
        ("chirpstack", "application/+/device/+/event/up", EUI, None, (f"application/+/device/{EUI}/event/up",)),
        ("chirpstack", "application/app-1/device/+/event/up", EUI, None, (f"application/+/device/{EUI}/event/up",)),
        ("chirpstack", "application/+/device/+/event/status", EUI, None, ()),
        ("native", "edge/v1/devices/+/+", "radar-1", None, ("edge/v1/devices/radar-1/+",)),
        ("native", "edge/v1/devices/+/state", "radar-1", "x", ("edge/v1/devices/radar-1/+",)),
        ("frigate", "frigate/events", "lot_cam/fire_lane_1", None, ()),
    ],
)
def test_safety_topics(key: str, source_filter: str, address: str, friendly: str | None, expected: tuple) -> None:
    assert DRIVERS[key].safety_topics(source_filter, address, friendly) == expected


def test_filter_base_and_configurable_base_topic() -> None:
    assert filter_base("zigbee2mqtt/#") == "zigbee2mqtt"
    assert filter_base("edge/v1/devices/+/+") == "edge/v1/devices"
    assert filter_base("#") == ""
    assert _spec_for("zigbee2mqtt", ("zigbee2mqtt/#",)) is DRIVERS["zigbee2mqtt"]
    bound = _spec_for("zigbee2mqtt", ("site1/z2m/#",))
    assert bound.decode("site1/z2m/b3/sos", b'{"sos": true}')[0].device == "name:b3/sos"
    with pytest.raises(DecodeError):
        bound.decode("zigbee2mqtt/b3/sos", b'{"sos": true}')
    assert _spec_for("native", ("site1/native/+/+",)) is DRIVERS["native"]


# ---------------------------------------------------------------- hostile corpus


@pytest.mark.parametrize(("key", "topic"), ALL_TOPICS)
def test_hostile_corpus_only_decode_errors(key: str, topic: str) -> None:
    spec = DRIVERS[key]
    for payload in HOSTILE:
        run(spec, topic, payload)


@pytest.mark.parametrize(("key", "topic"), DATA_TOPICS)
def test_deep_nesting_is_too_deep(key: str, topic: str) -> None:
    for payload in (b"[" * 100_000, b"{" * 1_000_000, b'{"a":' * 50_000, b"[" * 33 + b"]" * 33):
        result = run(DRIVERS[key], topic, payload)
        assert isinstance(result, DecodeError) and result.reason == "too_deep", payload[:10]


@pytest.mark.parametrize(("key", "topic"), DATA_TOPICS)
def test_huge_payload_is_fast(key: str, topic: str) -> None:
    t0 = time.perf_counter()
    for payload in (b"{" * 1_000_000, b"[1," * 300_000 + b"1]", b'"' + b"a" * 1_000_000 + b'"'):
        run(DRIVERS[key], topic, payload)
    assert time.perf_counter() - t0 < 2.0


@pytest.mark.parametrize(("key", "topic"), ALL_TOPICS)
def test_decode_is_deterministic_and_shares_no_state(key: str, topic: str) -> None:
    spec = DRIVERS[key]
    for payload in [
        *HOSTILE[:20],
        b'{"contact": true, "battery": 50, "action": "single"}',
        b'{"values": {"contact": true}, "meta": {"a": 1}, "event": "sos"}',
        b'{"deviceInfo": {"devEui": "70b3d57ed0051234"}, "fPort": 2, "data": "AVr/OBU=", '
        b'"rxInfo": [{"gatewayId": "aa", "rssi": -80}], "batteryLevel": 50}',
    ]:
        first = run(spec, topic, payload)
        snapshot = copy.deepcopy(first)
        if isinstance(first, list):  # mutating a result must not leak into the next call
            for r in first:
                if isinstance(r.values, dict):
                    r.values.clear()
                if isinstance(r.meta, dict):
                    r.meta.clear()
        second = run(spec, topic, payload)
        if isinstance(snapshot, DecodeError):
            assert isinstance(second, DecodeError) and second.reason == snapshot.reason
        else:
            assert second == snapshot


def test_unknown_driver_is_a_decode_error() -> None:
    with pytest.raises(DecodeError) as exc:
        drivers.decode("no-such-driver", "x", b"{}")
    assert exc.value.reason == "unsupported"


# ---------------------------------------------------------------- property-based

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["online", "offline", "true", "false", "87", "21.5", "nan", "1e999", "AVr/OBU=", ""]),
)
json_any = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=10), children, max_size=4),
    ),
    max_leaves=20,
)
KNOWN_KEYS = sorted(
    set(CANONICAL_VALUES)
    | {
        "action",
        "emergency",
        "fall_detected",
        "fall_down_status",
        "last_seen",
        "device",
        "ts",
        "values",
        "event",
        "meta",
        "state",
        "deviceInfo",
        "fPort",
        "fCnt",
        "data",
        "object",
        "rxInfo",
        "time",
        "batteryLevel",
        "margin",
        "externalPowerSource",
        "parking_status",
        "occupied",
    }
)
json_known_obj = st.dictionaries(st.sampled_from(KNOWN_KEYS), json_any, max_size=8)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _dump(obj: Any) -> bytes:
    return json.dumps(obj).encode()  # allow_nan: NaN/Infinity are real-world inputs


@FUZZ
@given(idx=st.integers(min_value=0, max_value=len(ALL_TOPICS) - 1), payload=st.binary(max_size=200))
def test_fuzz_arbitrary_bytes(idx: int, payload: bytes) -> None:
    key, topic = ALL_TOPICS[idx]
    run(DRIVERS[key], topic, payload)


@FUZZ
@given(idx=st.integers(min_value=0, max_value=len(ALL_TOPICS) - 1), obj=json_any)
def test_fuzz_arbitrary_json(idx: int, obj: Any) -> None:
    key, topic = ALL_TOPICS[idx]
    run(DRIVERS[key], topic, _dump(obj))


@FUZZ
@given(idx=st.integers(min_value=0, max_value=len(ALL_TOPICS) - 1), obj=json_known_obj)
def test_fuzz_objects_with_known_keys(idx: int, obj: dict[str, Any]) -> None:
    key, topic = ALL_TOPICS[idx]
    run(DRIVERS[key], topic, _dump(obj))


@FUZZ
@given(values=st.dictionaries(st.sampled_from(sorted(CANONICAL_VALUES)), json_leaf, max_size=6), ev=json_leaf)
def test_fuzz_native_envelopes(values: dict[str, Any], ev: Any) -> None:
    spec = DRIVERS["native"]
    run(spec, "edge/v1/devices/d/state", _dump({"values": values}))
    run(spec, "edge/v1/devices/d/event", _dump({"event": ev, "values": values}))


@FUZZ
@given(
    obj=st.one_of(st.none(), json_known_obj, json_any),
    data=st.one_of(st.binary(max_size=8).map(lambda b: base64.b64encode(b).decode()), json_leaf),
    fport=st.one_of(st.just(2), json_leaf),
    rx=st.one_of(st.lists(st.dictionaries(st.sampled_from(["gatewayId", "rssi", "snr"]), json_leaf)), json_any),
)
def test_fuzz_chirpstack_envelopes(obj: Any, data: Any, fport: Any, rx: Any) -> None:
    msg = {"deviceInfo": {"devEui": EUI}, "fPort": fport, "data": data, "rxInfo": rx}
    if obj is not None:
        msg["object"] = obj
    run(DRIVERS["chirpstack"], f"application/a/device/{EUI}/event/up", _dump(msg))


@FUZZ
@given(frame=st.binary(min_size=5, max_size=5))
def test_fuzz_parking_frames(frame: bytes) -> None:
    msg = {"deviceInfo": {"devEui": EUI}, "fPort": 2, "data": base64.b64encode(frame).decode()}
    result = run(DRIVERS["chirpstack"], f"application/a/device/{EUI}/event/up", _dump(msg))
    if frame[1] <= 100 or frame[1] == 0xFF:
        assert isinstance(result, list) and result[0].values["vehicle_present"] == bool(frame[0] & 1)
    else:
        assert isinstance(result, DecodeError) and result.reason == "bad_value"


@FUZZ
@given(topic=st.text(max_size=60), payload=st.sampled_from(HOSTILE[:19]))
def test_fuzz_topics(topic: str, payload: bytes) -> None:
    for spec in DRIVERS.values():
        run(spec, topic, payload)


def test_decode_error_pickles() -> None:
    import pickle

    err = pickle.loads(pickle.dumps(DecodeError("bad_value", "battery 250")))
    assert (err.reason, err.detail, str(err)) == ("bad_value", "battery 250", "bad_value: battery 250")
