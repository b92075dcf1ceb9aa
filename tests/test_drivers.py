"""Driver decoding from real published payload formats (samples under tests/payloads/)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

import drivers
from drivers import chirpstack, frigate, native, parking_codec, zigbee2mqtt
from drivers.base import (
    AVAILABILITY,
    BRIDGE,
    EVENT,
    STATE,
    DecodeError,
    Reading,
    coerce_value,
    parse_timestamp_ms,
)

PAYLOADS = Path(__file__).parent / "payloads"


def sample(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def reason(fn: Any, *args: Any) -> str:
    with pytest.raises(DecodeError) as exc:
        fn(*args)
    assert exc.value.reason in DecodeError.REASONS
    return exc.value.reason


# ---------------------------------------------------------------- Zigbee2MQTT


def z2m(topic: str, payload: bytes | str | dict[str, Any]) -> list[Reading]:
    if isinstance(payload, dict):
        payload = json.dumps(payload)
    if isinstance(payload, str):
        payload = payload.encode()
    return zigbee2mqtt.decode(topic, payload)


def test_z2m_aqara_door_sensor() -> None:
    out = z2m("zigbee2mqtt/b3/u1/front_door", sample("zigbee2mqtt/aqara_door_MCCGQ11LM.json"))
    assert out == [
        Reading(
            "name:b3/u1/front_door",
            STATE,
            {"battery": 100, "contact": False, "linkquality": 145, "voltage": 3025},
            None,
            {"friendly_name": "b3/u1/front_door"},
        )
    ]


def test_z2m_aqara_water_leak() -> None:
    (r,) = z2m("zigbee2mqtt/b3/u1/kitchen_leak", sample("zigbee2mqtt/aqara_water_leak_SJCGQ11LM.json"))
    assert r.kind == STATE and r.device == "name:b3/u1/kitchen_leak"
    assert r.values == {
        "battery": 91,
        "battery_low": False,
        "linkquality": 102,
        "tamper": False,
        "voltage": 2985,
        "water_leak": True,
    }


def test_z2m_heiman_smoke() -> None:
    (r,) = z2m("zigbee2mqtt/b3/u1/smoke", sample("zigbee2mqtt/heiman_smoke_HS1SA.json"))
    assert r.values == {"battery": 100, "battery_low": False, "linkquality": 134, "smoke": True, "tamper": False}


def test_z2m_tuya_sos_button_gives_state_and_sos_event() -> None:
    out = z2m("zigbee2mqtt/b3/u1/sos", sample("zigbee2mqtt/tuya_sos_TS0215A_sos.json"))
    meta = {"friendly_name": "b3/u1/sos"}
    assert out == [
        Reading(
            "name:b3/u1/sos",
            STATE,
            {"battery": 100, "linkquality": 120, "voltage": 2900, "action": "emergency"},
            None,
            meta,
        ),
        Reading("name:b3/u1/sos", EVENT, {"sos": True}, None, meta),
    ]


@pytest.mark.parametrize("action", ["sos", "emergency"])
def test_z2m_action_only_sos(action: str) -> None:
    assert z2m("zigbee2mqtt/pull_cord", {"action": action}) == [
        Reading("name:pull_cord", EVENT, {"sos": True}, None, {"friendly_name": "pull_cord"})
    ]


def test_z2m_action_fall_and_generic_button() -> None:
    assert z2m("zigbee2mqtt/r", {"action": "fall"})[0].values == {"fall": True}
    out = z2m("zigbee2mqtt/living/remote", sample("zigbee2mqtt/ikea_remote_E1524_E1810.json"))
    assert [(r.kind, dict(r.values)) for r in out] == [
        (STATE, {"battery": 74, "linkquality": 51, "action": "toggle"}),
        (EVENT, {"action": "toggle"}),
    ]


def test_z2m_ias_sos_boolean_is_state() -> None:
    (r,) = z2m("zigbee2mqtt/b3/u2/sos", sample("zigbee2mqtt/ias_sos_alarm.json"))
    assert r.kind == STATE
    assert r.values == {"battery_low": False, "linkquality": 98, "sos": True, "tamper": False}
    (r,) = z2m("zigbee2mqtt/x", {"emergency": True, "sos": False})
    assert r.values == {"sos": True}  # aliases: any True wins


def test_z2m_motion_sensors() -> None:
    (ikea,) = z2m("zigbee2mqtt/hall_motion", sample("zigbee2mqtt/ikea_motion_E1525.json"))
    assert ikea.values == {"battery": 87, "linkquality": 76, "occupancy": True}
    (hue,) = z2m("zigbee2mqtt/stairs_motion", sample("zigbee2mqtt/philips_motion_9290012607.json"))
    assert hue.values == {"battery": 100, "linkquality": 134, "occupancy": False, "temperature": 21.64}


def test_z2m_radars_presence_and_fall() -> None:
    (fp1,) = z2m("zigbee2mqtt/b3/u1/bedroom", sample("zigbee2mqtt/aqara_fp1_RTCZCGQ11LM.json"))
    assert fp1.values == {"linkquality": 167, "presence": True}
    (fall,) = z2m("zigbee2mqtt/b3/u1/bath_radar", sample("zigbee2mqtt/tuya_fall_radar_TS0601.json"))
    assert fall.values == {"fall": True, "presence": True, "linkquality": 156}
    assert z2m("zigbee2mqtt/r", {"fall_down_status": "none"})[0].values == {"fall": False}
    assert z2m("zigbee2mqtt/r", {"fall_detection_status": "maybe_fall"})[0].values == {"fall": True}
    assert z2m("zigbee2mqtt/r", {"fall_detected": "true"})[0].values == {"fall": True}


def test_z2m_include_device_information_uses_ieee_and_last_seen() -> None:
    (r,) = z2m("zigbee2mqtt/b3/u1/front_door", sample("zigbee2mqtt/include_device_information.json"))
    assert r.device == "0x00158d0001a2b3c4"
    assert r.ts_ms == 1714557600123
    assert r.meta == {"friendly_name": "b3/u1/front_door"}
    assert r.values == {"battery": 97, "contact": True, "linkquality": 120, "voltage": 3005}
    (r,) = z2m("zigbee2mqtt/d", {"contact": True, "last_seen": 1714557600123})
    assert r.ts_ms == 1714557600123


def test_z2m_numbers_and_booleans_as_strings() -> None:
    (r,) = z2m("zigbee2mqtt/d", {"battery": "87", "temperature": "21.5", "contact": "true", "tamper": "FALSE"})
    assert r.values == {"battery": 87, "temperature": 21.5, "contact": True, "tamper": False}


def test_z2m_nulls_are_skipped() -> None:
    (r,) = z2m("zigbee2mqtt/d", {"battery": None, "contact": True, "temperature": None})
    assert r.values == {"contact": True}
    assert z2m("zigbee2mqtt/d", {"battery": None, "action": ""}) == []


def test_z2m_availability_both_formats() -> None:
    legacy = z2m("zigbee2mqtt/b3/u1/sos/availability", sample("zigbee2mqtt/availability_legacy.txt"))
    assert legacy == [Reading("name:b3/u1/sos", AVAILABILITY, {"online": False}, None, {"friendly_name": "b3/u1/sos"})]
    (new,) = z2m("zigbee2mqtt/b3/u1/sos/availability", sample("zigbee2mqtt/availability_json.json"))
    assert new.values == {"online": True} and new.kind == AVAILABILITY
    assert z2m("zigbee2mqtt/x/availability", '"online"')[0].values == {"online": True}


def test_z2m_bridge_state_and_devices() -> None:
    assert z2m("zigbee2mqtt/bridge/state", sample("zigbee2mqtt/bridge_state_json.json")) == [
        Reading("bridge:zigbee2mqtt", BRIDGE, {"online": True})
    ]
    assert z2m("zigbee2mqtt/bridge/state", sample("zigbee2mqtt/bridge_state_legacy.txt"))[0].values == {"online": False}
    (r,) = z2m("zigbee2mqtt/bridge/devices", sample("zigbee2mqtt/bridge_devices.json"))
    assert r == Reading(
        "bridge:zigbee2mqtt",
        BRIDGE,
        {
            "devices": {
                "Coordinator": "0x00124b0022aa3b5c",
                "b3/u1/front_door": "0x00158d0001a2b3c4",
                "b3/u1/sos": "0xa4c138d2e5f60718",
            }
        },
    )


def test_z2m_bridge_devices_legacy_key() -> None:
    (r,) = z2m("zigbee2mqtt/bridge/devices", json.dumps([{"ieeeAddr": "0x00158D00AA", "friendly_name": "a"}]))
    assert r.values == {"devices": {"a": "0x00158d00aa"}}


IKEA_BULB = "0x90fd9ffffe6494fc"


@pytest.mark.parametrize(
    ("name", "network"),
    [
        ("bridge_event_device_joined.json", "joined"),
        ("bridge_event_device_announce.json", "announced"),
        ("bridge_event_device_interview_started.json", "interview_started"),
        ("bridge_event_device_interview_failed.json", "interview_failed"),
        ("bridge_event_device_leave.json", "left"),
    ],
)
def test_z2m_bridge_events(name: str, network: str) -> None:
    assert z2m("zigbee2mqtt/bridge/event", sample(f"zigbee2mqtt/{name}")) == [
        Reading(IKEA_BULB, BRIDGE, {"network": network}, None, {"friendly_name": IKEA_BULB})
    ]


def test_z2m_bridge_event_successful_interview_carries_the_definition() -> None:
    assert z2m("zigbee2mqtt/bridge/event", sample("zigbee2mqtt/bridge_event_device_interview_successful.json")) == [
        Reading(
            IKEA_BULB,
            BRIDGE,
            {"network": "interviewed"},
            None,
            {
                "friendly_name": IKEA_BULB,
                "supported": True,
                "model": "LED1624G9",
                "vendor": "IKEA",
                "description": "TRADFRI LED bulb E14/E26/E27 600 lumen, dimmable, color, opal white",
            },
        )
    ]
    # an unsupported device: no definition; a multi-segment base and a renamed device
    dec = zigbee2mqtt.make_decoder("site1/z2m")
    unsupported = {"friendly_name": "b3/pir", "status": "successful", "ieee_address": "0x00158D00AABBCCDD"}
    msg = {"type": "device_interview", "data": {**unsupported, "supported": False, "definition": None}}
    assert dec("site1/z2m/bridge/event", json.dumps(msg).encode()) == [
        Reading(
            "0x00158d00aabbccdd",
            BRIDGE,
            {"network": "interviewed"},
            None,
            {"friendly_name": "b3/pir", "supported": False},
        )
    ]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"data": {"ieee_address": IKEA_BULB}}, "missing_field"),
        ({"type": 5, "data": {}}, "wrong_type"),
        ({"type": "device_joined"}, "missing_field"),
        ({"type": "device_joined", "data": []}, "wrong_type"),
        ({"type": "device_joined", "data": {"friendly_name": "x"}}, "missing_field"),
        ({"type": "device_joined", "data": {"ieee_address": 5}}, "wrong_type"),
        ({"type": "device_joined", "data": {"ieee_address": "door"}}, "bad_value"),
        ({"type": "device_interview", "data": {"ieee_address": IKEA_BULB, "status": "done"}}, "bad_value"),
        ("[]", "wrong_type"),
    ],
)
def test_z2m_bridge_event_errors(payload: Any, expected: str) -> None:
    assert reason(z2m, "zigbee2mqtt/bridge/event", payload) == expected


def test_z2m_bridge_event_of_another_kind_is_ignored() -> None:
    assert z2m("zigbee2mqtt/bridge/event", {"type": "device_renamed", "data": {}}) == []


@pytest.mark.parametrize(
    "topic",
    [
        "zigbee2mqtt/bridge/info",
        "zigbee2mqtt/bridge/logging",
        "zigbee2mqtt/bridge/log",
        "zigbee2mqtt/bridge/config",
        "zigbee2mqtt/bridge/response/device/rename",
        "zigbee2mqtt/b3/u1/sos/set",
        "zigbee2mqtt/b3/u1/sos/get",
        "zigbee2mqtt/lamp/set/state",
        "zigbee2mqtt/b3/u1/sos/action",
    ],
)
def test_z2m_ignored_topics(topic: str) -> None:
    assert z2m(topic, sample("zigbee2mqtt/bridge_info.json")) == []
    assert z2m(topic, b"\xff\xfe not json") == []


def test_z2m_any_base_and_multi_segment_base() -> None:
    (r,) = z2m("z2m_b7/door", {"contact": True})
    assert r.device == "name:door"
    assert z2m("z2m_b7/bridge/state", "online")[0].device == "bridge:z2m_b7"
    dec = zigbee2mqtt.make_decoder("site1/z2m")
    (r,) = dec("site1/z2m/b3/u1/door", b'{"contact": false}')
    assert r.device == "name:b3/u1/door"
    assert dec("site1/z2m/bridge/state", b"online")[0].device == "bridge:site1/z2m"
    assert reason(dec, "site2/z2m/door", b"{}") == "bad_topic"


def test_z2m_group_state_is_unsupported() -> None:
    assert reason(z2m, "zigbee2mqtt/hall_lights", sample("zigbee2mqtt/group_state.json")) == "unsupported"


@pytest.mark.parametrize(
    ("topic", "payload", "expected"),
    [
        ("zigbee2mqtt/d", b'{"contact": "yes"}', "wrong_type"),
        ("zigbee2mqtt/d", b'{"contact": 1}', "wrong_type"),
        ("zigbee2mqtt/d", b'{"battery": "lots"}', "wrong_type"),
        ("zigbee2mqtt/d", b'{"battery": true}', "wrong_type"),
        ("zigbee2mqtt/d", b'{"battery": [1]}', "wrong_type"),
        ("zigbee2mqtt/d", b'{"action": 3}', "wrong_type"),
        ("zigbee2mqtt/d", b'{"fall_down_status": 1}', "wrong_type"),
        ("zigbee2mqtt/d", b'{"last_seen": [], "contact": true}', "wrong_type"),
        ("zigbee2mqtt/d", b"[1, 2]", "wrong_type"),
        ("zigbee2mqtt/d", b"null", "wrong_type"),
        ("zigbee2mqtt/d", b'{"battery": 250}', "bad_value"),
        ("zigbee2mqtt/d", b'{"battery": -1}', "bad_value"),
        ("zigbee2mqtt/d", b'{"battery": "250"}', "bad_value"),
        ("zigbee2mqtt/d", b'{"temperature": NaN}', "bad_value"),
        ("zigbee2mqtt/d", b'{"temperature": Infinity}', "bad_value"),
        ("zigbee2mqtt/d", b'{"temperature": 1e999}', "bad_value"),
        ("zigbee2mqtt/d", b'{"temperature": "nan"}', "bad_value"),
        ("zigbee2mqtt/d", b'{"linkquality": 300}', "bad_value"),
        ("zigbee2mqtt/d", b'{"fall_down_status": "sideways"}', "bad_value"),
        ("zigbee2mqtt/d", b'{"contact": true, "last_seen": "yesterday"}', "bad_value"),
        ("zigbee2mqtt/d", b'{"contact": true, "last_seen": "2024-05-01T10:00:00"}', "bad_value"),
        ("zigbee2mqtt/d", b'{"action": "' + b"x" * 100 + b'"}', "bad_value"),
        ("zigbee2mqtt/d", b'{"state": "ON"}', "unsupported"),
        ("zigbee2mqtt/d", b"{}", "unsupported"),
        ("zigbee2mqtt/d", b'{"contact": tru', "malformed_json"),
        ("zigbee2mqtt/d", b"", "malformed_json"),
        ("zigbee2mqtt/d", b"\xff\xfe", "binary"),
        ("zigbee2mqtt/d", b"[" * 100_000, "too_deep"),
        ("zigbee2mqtt/d/availability", b"maybe", "malformed_json"),
        ("zigbee2mqtt/d/availability", b'"maybe"', "bad_value"),
        ("zigbee2mqtt/d/availability", b'{"state": null}', "missing_field"),
        ("zigbee2mqtt/d/availability", b'{"state": true}', "wrong_type"),
        ("zigbee2mqtt/bridge/state", b"42", "wrong_type"),
        ("zigbee2mqtt/bridge/devices", b"{}", "wrong_type"),
        ("zigbee2mqtt/bridge/devices", b"[1]", "wrong_type"),
        ("zigbee2mqtt/bridge/devices", b'[{"friendly_name": "a"}]', "missing_field"),
        ("zigbee2mqtt/bridge/devices", b'[{"friendly_name": "a", "ieee_address": 5}]', "wrong_type"),
        ("zigbee2mqtt", b"{}", "bad_topic"),
        ("zigbee2mqtt/", b"{}", "bad_topic"),
        ("/door", b"{}", "bad_topic"),
        ("zigbee2mqtt/a//b", b"{}", "bad_topic"),
        ("zigbee2mqtt/door/", b"{}", "bad_topic"),
        ("zigbee2mqtt//availability", b"online", "bad_topic"),
    ],
)
def test_z2m_errors(topic: str, payload: bytes, expected: str) -> None:
    assert reason(zigbee2mqtt.decode, topic, payload) == expected


def test_z2m_normalise_address() -> None:
    norm = drivers.DRIVERS["zigbee2mqtt"].normalise_address
    assert norm(" 0x00158D0001A2B3C4 ") == "0x00158d0001a2b3c4"
    assert norm("00:15:8d:00:01:a2:b3:c4") == "0x00158d0001a2b3c4"
    assert norm("name:B3/U1/Door") == "name:B3/U1/Door"
    assert norm("Front Door") == "Front Door"


# ---------------------------------------------------------------- ChirpStack v4

EUI = "70b3d57ed0051234"
UP = f"application/17c82e96-be03-4f38-aef3-f83d48582d97/device/{EUI}/event/up"
STATUS = UP[: -len("up")] + "status"


def cs(topic: str, payload: bytes | dict[str, Any]) -> list[Reading]:
    if isinstance(payload, dict):
        payload = json.dumps(payload).encode()
    return chirpstack.decode(topic, payload)


def cs_sample(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(sample(f"chirpstack/{name}"))
    return obj


def test_parking_codec_layout() -> None:
    occupied = bytes.fromhex(sample("chirpstack/parking_status_occupied.hex").decode().strip())
    assert parking_codec.decode_status(occupied) == (
        {"vehicle_present": True, "tamper": False, "battery_low": False, "battery": 90, "temperature": 21},
        {"heartbeat": False, "mag_delta": -200},
    )
    heartbeat = bytes.fromhex(sample("chirpstack/parking_status_heartbeat_free.hex").decode().strip())
    assert parking_codec.decode_status(heartbeat) == (
        {"vehicle_present": False, "tamper": True, "battery_low": True},
        {"heartbeat": True, "mag_delta": 18},
    )
    assert base64.b64decode("AVr/OBU=") == occupied  # the example in docs/drivers.md
    assert reason(parking_codec.decode_status, b"\x01\x5a") == "bad_value"
    assert reason(parking_codec.decode_status, b"\x01\x65\x00\x00\x00") == "bad_value"  # 101 %


def test_chirpstack_uplink_raw_parking_fport2() -> None:
    (r,) = cs(UP, sample("chirpstack/up_parking_fport2_raw.json"))
    assert r == Reading(
        EUI,
        STATE,
        {
            "vehicle_present": True,
            "tamper": False,
            "battery_low": False,
            "battery": 90,
            "temperature": 21,
            "rssi": -97,
            "snr": 6.5,
        },
        1714557600823,
        {
            "fcnt": 1042,
            "fport": 2,
            "dedup_id": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
            "gateway_ids": ["0016c001f153a14c", "0016c001f1500812"],
            "heartbeat": False,
            "mag_delta": -200,
            "rssi": -97,
            "snr": 6.5,
        },
    )


def test_chirpstack_uplink_with_codec_object() -> None:
    (r,) = cs(UP, sample("chirpstack/up_codec_object.json"))
    assert r.device == EUI and r.kind == STATE
    assert r.values == {"vehicle_present": False, "battery": 76.0, "temperature": 20.0, "rssi": -97, "snr": 6.5}
    assert r.meta["fcnt"] == 1043 and r.meta["gateway_ids"] == ["0016c001f153a14c"]
    assert "heartbeat" not in r.meta  # the byte decoder did not run


def test_chirpstack_object_aliases() -> None:
    base = cs_sample("up_codec_object.json")
    for obj, expected in [
        ({"occupied": True}, {"vehicle_present": True}),
        ({"parkingStatus": "OCCUPIED"}, {"vehicle_present": True}),
        ({"parking_status": False}, {"vehicle_present": False}),
        ({"batteryLevel": "55", "batteryVoltage": 3.6}, {"battery": 55, "voltage": 3.6}),
        ({"tamper": True, "rssi": -1, "note": "x", "nested": {"a": 1}}, {"tamper": True}),
    ]:
        (r,) = cs(UP, {**base, "object": obj, "rxInfo": []})
        assert r.values == expected, obj
        assert r.meta["gateway_ids"] == []


def test_chirpstack_object_without_known_keys_keeps_radio_and_lists_keys() -> None:
    (r,) = cs(UP, sample("chirpstack/up_object_unmapped.json"))
    assert r.values == {"rssi": -97, "snr": 6.5}
    assert r.meta["unmapped_keys"] == ["counter", "mode"]
    assert r.meta["fcnt"] == 0 and r.meta["fport"] == 5  # absent fCnt = proto3 default 0


def test_chirpstack_status_event() -> None:
    (r,) = cs(STATUS, sample("chirpstack/status.json"))
    assert r == Reading(EUI, STATE, {"battery": 87.4}, 1714557900100, {"margin": 7})
    assert cs(STATUS, sample("chirpstack/status_external_power.json")) == []
    unavailable = {**cs_sample("status.json"), "batteryLevelUnavailable": True}
    assert cs(STATUS, unavailable) == []


def test_chirpstack_ignored_events() -> None:
    join = sample("chirpstack/join.json")
    for ev in ("join", "ack", "txack", "log", "location", "integration"):
        assert cs(UP[: -len("up")] + ev, join) == []


def test_chirpstack_topic_case_and_normalise() -> None:
    upper = UP.replace(EUI, EUI.upper())
    assert cs(upper, sample("chirpstack/up_parking_fport2_raw.json"))[0].device == EUI
    assert drivers.DRIVERS["chirpstack"].normalise_address("70-B3-D5-7E-D0-05-12-34") == EUI


def _mut(**changes: Any) -> dict[str, Any]:
    obj = cs_sample("up_parking_fport2_raw.json")
    for k, v in changes.items():
        if v is KeyError:
            del obj[k]
        else:
            obj[k] = v
    return obj


@pytest.mark.parametrize(
    ("topic", "payload", "expected"),
    [
        (UP, _mut(fPort=9), "unsupported"),
        (UP, cs_sample("up_unknown_fport.json"), "unsupported"),
        (UP[: -len("up")] + "bogus", _mut(), "unsupported"),
        (UP, _mut(data=KeyError), "missing_field"),
        (UP, _mut(deviceInfo=KeyError), "missing_field"),
        (UP, _mut(deviceInfo={"deviceName": "x"}), "missing_field"),
        (UP, _mut(deviceInfo=[]), "wrong_type"),
        (UP, _mut(deviceInfo={"devEui": 7}), "wrong_type"),
        (UP, _mut(data="!!!not base64"), "bad_value"),
        (UP, _mut(data="AVr/OB"), "bad_value"),  # bad padding
        (UP, _mut(data=12), "wrong_type"),
        (UP, _mut(data="AVr/"), "bad_value"),  # 3 bytes: wrong frame length
        (UP, _mut(fPort="2"), "wrong_type"),
        (UP, _mut(fPort=300), "bad_value"),
        (UP, _mut(fCnt=-1), "bad_value"),
        (UP, _mut(time="not a time"), "bad_value"),
        (UP, _mut(time=1.5), "wrong_type"),
        (UP, _mut(rxInfo={}), "wrong_type"),
        (UP, _mut(rxInfo=[1]), "wrong_type"),
        (UP, _mut(rxInfo=[{"gatewayId": 5}]), "wrong_type"),
        (UP, _mut(rxInfo=[{"rssi": "loud"}]), "wrong_type"),
        (UP, _mut(rxInfo=[{"rssi": 1e999}]), "bad_value"),
        (UP, _mut(object=[1]), "wrong_type"),
        (UP, _mut(object={"battery": 180}), "bad_value"),
        (UP, _mut(object={"parking_status": "double-parked"}), "bad_value"),
        (UP, _mut(object={"parking_status": 1}), "wrong_type"),
        (UP, _mut(object={"vehicle_present": "maybe"}), "wrong_type"),
        (UP.replace(EUI, "70b3d57ed0059999"), _mut(), "bad_topic"),
        ("application/x/device/nothex0000000000/event/up", _mut(), "bad_topic"),
        ("application/x/device/70b3/event/up", _mut(), "bad_topic"),
        ("application//device/70b3d57ed0051234/event/up", _mut(), "bad_topic"),
        ("application/x/device/70b3d57ed0051234/up", _mut(), "bad_topic"),
        ("gateway/0016c001f153a14c/event/up", _mut(), "bad_topic"),
        (UP, b"[]", "wrong_type"),
        (UP, b"", "malformed_json"),
        (UP, b"\x00\x9f\x92\x96", "binary"),
        (UP, b"{" * 1_000_000, "too_deep"),
        (STATUS, {**cs_sample("status.json"), "batteryLevel": 250}, "bad_value"),
        (STATUS, {**cs_sample("status.json"), "batteryLevel": "full"}, "wrong_type"),
        (STATUS, {**cs_sample("status.json"), "externalPowerSource": "no"}, "wrong_type"),
        (STATUS, {**cs_sample("status.json"), "margin": 1.5}, "wrong_type"),
        (STATUS, {**cs_sample("status.json"), "margin": 10**30}, "bad_value"),
    ],
)
def test_chirpstack_errors(topic: str, payload: bytes | dict[str, Any], expected: str) -> None:
    assert reason(cs, topic, payload) == expected


# ---------------------------------------------------------------- Native JSON

NT = "edge/v1/devices/"


def nat(topic: str, payload: bytes | str | dict[str, Any]) -> list[Reading]:
    if isinstance(payload, dict):
        payload = json.dumps(payload)
    if isinstance(payload, str):
        payload = payload.encode()
    return native.decode(topic, payload)


def test_native_state_fall_radar() -> None:
    assert nat(NT + "radar-b3-u1/state", sample("native/state_fall_radar.json")) == [
        Reading(
            "radar-b3-u1",
            STATE,
            {"presence": True, "fall": False, "heart_rate": 72, "breath_rate": 16},
            1714557600000,
            {},
        )
    ]


def test_native_events() -> None:
    (fall,) = nat(NT + "radar-b3-u1/event", sample("native/event_fall_radar.json"))
    assert fall == Reading("radar-b3-u1", EVENT, {"fall": True, "presence": True}, 1714550405250, {})
    (denied,) = nat(NT + "ac.b3.lobby/event", sample("native/event_access_denied.json"))
    assert denied == Reading(
        "ac.b3.lobby",
        EVENT,
        {"access_denied": True},
        1714557601000,
        {"reader": "b3-lobby", "credential": "card:04A2B3C4", "reason": "expired"},
    )
    (sos,) = nat(NT + "Watch_0042/event", sample("native/event_sos_wearable.json"))
    assert sos == Reading("watch_0042", EVENT, {"sos": True, "battery": 64, "heart_rate": 118, "spo2": 94})
    for name in ("door_forced", "access_granted", "gate_fault", "tamper"):
        assert nat(NT + "d/event", {"event": name})[0].values == {name: True}


def test_native_state_barrier_gate_and_availability() -> None:
    (gate,) = nat(NT + "gate-north/state", sample("native/state_barrier_gate.json"))
    assert gate.values == {"gate_fault": False, "vehicle_present": True} and gate.ts_ms is None
    assert nat(NT + "gate-north/availability", sample("native/availability_json.json")) == [
        Reading("gate-north", AVAILABILITY, {"online": False})
    ]
    assert nat(NT + "gate-north/availability", sample("native/availability_lwt.txt"))[0].values == {"online": False}
    assert nat(NT + "gate-north/availability", "online")[0].values == {"online": True}
    assert nat(NT + "gate-north/availability", '"online"')[0].values == {"online": True}
    assert nat(NT + "gate-north/availability", {"online": "true"})[0].values == {"online": True}


def test_native_command_channels_ignored() -> None:
    for ch in ("command", "cmd", "set"):
        assert nat(NT + "gate-north/" + ch, b"\xff") == []


@pytest.mark.parametrize(
    ("topic", "payload", "expected"),
    [
        (NT + "d/state", {"values": {"colour": "red"}}, "unsupported"),
        (NT + "d/state", {"values": {"online": True}}, "unsupported"),
        (NT + "d/event", {"event": "party"}, "unsupported"),
        (NT + "d/event", {"event": "battery"}, "unsupported"),
        (NT + "d/telemetry", {"values": {}}, "unsupported"),
        (NT + "d/state", {"ts": 1}, "missing_field"),
        (NT + "d/state", {"values": None}, "missing_field"),
        (NT + "d/event", {"values": {}}, "missing_field"),
        (NT + "d/availability", {}, "missing_field"),
        (NT + "d/state", {"values": []}, "wrong_type"),
        (NT + "d/state", {"values": {"contact": "open"}}, "wrong_type"),
        (NT + "d/state", {"values": {"contact": None}}, "wrong_type"),
        (NT + "d/state", {"values": {"heart_rate": "fast"}}, "wrong_type"),
        (NT + "d/state", {"values": {"contact": True}, "ts": 1.5}, "wrong_type"),
        (NT + "d/state", {"values": {"contact": True}, "meta": []}, "wrong_type"),
        (NT + "d/state", {"values": {"contact": True}, "meta": {"a": [1]}}, "wrong_type"),
        (NT + "d/event", {"event": 5}, "wrong_type"),
        (NT + "d/availability", {"online": "yes"}, "wrong_type"),
        (NT + "d/availability", b"[]", "wrong_type"),
        (NT + "d/state", {"values": {}}, "bad_value"),
        (NT + "d/state", {"values": {"battery": 101}}, "bad_value"),
        (NT + "d/state", {"values": {"spo2": "120"}}, "bad_value"),
        (NT + "d/state", {"values": {"contact": True}, "ts": 1714557600}, "bad_value"),  # seconds
        (NT + "d/state", {"values": {"contact": True}, "ts": "2024-05-01 nope"}, "bad_value"),
        (NT + "d/state", {"values": {"contact": True}, "ts": "2024-05-01"}, "bad_value"),
        (NT + "d/state", {"values": {"contact": True}, "meta": {"a": "x" * 300}}, "bad_value"),
        (NT + "d/state", {"values": {"contact": True}, "meta": {str(i): i for i in range(40)}}, "bad_value"),
        (NT + "d/event", {"event": "sos", "values": {"sos": False}}, "bad_value"),
        (NT + "d/availability", b'"sleeping"', "bad_value"),
        (NT + "d/state", b'{"values": {"temperature": NaN}}', "bad_value"),
        (NT + "d/state", b'{"values": {"temperature": -Infinity}}', "bad_value"),
        (NT + "d/state", b"{'values': {}}", "malformed_json"),
        (NT + "d/state", b"\xff\xfe", "binary"),
        (NT + "d/state", b"[" * 100_000, "too_deep"),
        (NT + "bad id/state", {"values": {"contact": True}}, "bad_topic"),
        (NT + "x" * 65 + "/state", {"values": {"contact": True}}, "bad_topic"),
        (NT + "/state", {"values": {"contact": True}}, "bad_topic"),
        (NT + "d", {"values": {"contact": True}}, "bad_topic"),
        (NT + "d/", {"values": {"contact": True}}, "bad_topic"),
        ("edge/v2/devices/d/state", {"values": {"contact": True}}, "bad_topic"),
    ],
)
def test_native_errors(topic: str, payload: bytes | dict[str, Any], expected: str) -> None:
    assert reason(nat, topic, payload) == expected


# ---------------------------------------------------------------- Frigate events

FRIGATE_EVENTS = "frigate/events"


def frig(name: str) -> list[Reading]:
    return frigate.decode(FRIGATE_EVENTS, sample(f"frigate/{name}"))


def test_frigate_car_moving_between_bays() -> None:
    meta = {"camera": "lot_cam", "label": "car", "event_id": "1714557700.5-x9y8z7", "score": 0.9}
    assert frig("update_car_moved.json") == [
        Reading("lot_cam/space_03", STATE, {"vehicle_present": False}, 1714557760250, {**meta, "zone": "space_03"}),
        Reading("lot_cam/space_04", STATE, {"vehicle_present": True}, 1714557760250, {**meta, "zone": "space_04"}),
    ]


def test_frigate_end_frees_the_zone() -> None:
    assert frig("end_car.json") == [
        Reading(
            "lot_cam/fire_lane_1",
            STATE,
            {"vehicle_present": False},
            1714558230500,
            {
                "camera": "lot_cam",
                "label": "car",
                "event_id": "1714557600.123456-ab12cd",
                "score": 0.83,
                "zone": "fire_lane_1",
            },
        )
    ]


def test_frigate_person_enters_and_leaves_a_restricted_zone() -> None:
    meta = {"camera": "back_door", "label": "person", "event_id": "1714600000.9-p1q2r3", "zone": "restricted"}
    assert frig("new_person_back_door.json") == [
        Reading("back_door/restricted", STATE, {"occupancy": True}, 1714600001300, {**meta, "score": 0.79})
    ]
    assert frig("update_person_left_zone.json") == [
        Reading("back_door/restricted", STATE, {"occupancy": False}, 1714600012600, {**meta, "score": 0.81})
    ]


@pytest.mark.parametrize("name", ["false_positive.json", "new_dog.json"])
def test_frigate_ignored_objects(name: str) -> None:
    assert frig(name) == []


def test_frigate_other_topics_and_normalise() -> None:
    payload = sample("frigate/new_car_fire_lane.json")
    # Frigate's other topics are valid messages the driver has no use for
    for topic in (
        "frigate/lot_cam/car/snapshot",
        "frigate/fire_lane_1/car/active",
        "frigate/lot_cam/all",
        "frigate/lot_cam/dog",
        "frigate/lot_cam/motion",
        "frigate/available",
        "frigate/stats",
        "frigate/events/x",
    ):
        assert frigate.decode(topic, payload) == [], topic
    for topic in ("frigate", "frigate/", "/events"):
        assert reason(frigate.decode, topic, payload) == "bad_topic"
    assert drivers.DRIVERS["frigate"].normalise_address(" Lot_Cam/Fire_Lane_1 ") == "lot_cam/fire_lane_1"


# ---------------------------------------------------------------- Frigate object counts


def test_frigate_zone_count_of_cars_is_vehicle_present() -> None:
    assert frigate.decode("frigate/fire_lane_1/car", sample("frigate/count_zone_car.txt")) == [
        Reading("fire_lane_1", STATE, {"vehicle_present": True}, None, {"label": "car", "count": 1})
    ]
    assert frigate.decode("frigate/Fire_Lane_1/car", sample("frigate/count_zone_car_zero.txt")) == [
        Reading("fire_lane_1", STATE, {"vehicle_present": False}, None, {"label": "car", "count": 0})
    ]


def test_frigate_camera_count_of_persons_is_occupancy_and_the_prefix_is_the_first_level() -> None:
    expected = [Reading("lobby_cam", STATE, {"occupancy": True}, None, {"label": "person", "count": 2})]
    assert frigate.decode("frigate/lobby_cam/person", sample("frigate/count_camera_person.txt")) == expected
    assert frigate.decode("nvr2/lobby_cam/person", sample("frigate/count_camera_person.txt")) == expected


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"-1", "bad_value"),
        (b"10001", "bad_value"),
        (b"1.5", "wrong_type"),
        (b"ON", "malformed_json"),
        (b'"1"', "wrong_type"),
        (b"true", "wrong_type"),
        (b"", "malformed_json"),
    ],
)
def test_frigate_count_errors(payload: bytes, expected: str) -> None:
    assert reason(frigate.decode, "frigate/fire_lane_1/car", payload) == expected
    assert reason(frigate.decode, "frigate/fire lane/car", b"1") == "bad_topic"


# ---------------------------------------------------------------- Frigate reviews (0.14+)

FRIGATE_REVIEWS = "frigate/reviews"


def test_frigate_review_alert_marks_the_zone_the_person_newly_reached() -> None:
    # the documented example: person and car already in the review, front_yard newly entered
    assert frigate.decode(FRIGATE_REVIEWS, sample("frigate/review_update_alert.json")) == [
        Reading(
            "front_cam/front_yard",
            EVENT,
            {"occupancy": True},
            None,
            {"camera": "front_cam", "severity": "alert", "review_id": "1718987129.308396-fqk5ka", "zone": "front_yard"},
        )
    ]


def test_frigate_review_new_person_marks_every_zone_and_end_marks_none() -> None:
    meta = {"camera": "back_door", "severity": "alert", "review_id": "1718990000.250000-r7s8t9"}
    assert frigate.decode(FRIGATE_REVIEWS, sample("frigate/review_new_person_restricted.json")) == [
        Reading("back_door/restricted", EVENT, {"occupancy": True}, None, {**meta, "zone": "restricted"}),
        Reading("back_door/stairwell", EVENT, {"occupancy": True}, None, {**meta, "zone": "stairwell"}),
    ]
    assert frigate.decode(FRIGATE_REVIEWS, sample("frigate/review_end_person.json")) == []


def test_frigate_review_update_with_no_new_zone_and_reviews_without_a_person() -> None:
    msg = json.loads(sample("frigate/review_new_person_restricted.json"))
    msg["type"] = "update"  # same zones before and after: nothing new
    assert frigate.decode(FRIGATE_REVIEWS, json.dumps(msg).encode()) == []
    msg["before"]["data"]["objects"] = ["car"]  # the person is new to the review: every zone
    assert [r.device for r in frigate.decode(FRIGATE_REVIEWS, json.dumps(msg).encode())] == [
        "back_door/restricted",
        "back_door/stairwell",
    ]
    # a car review never sets vehicle_present: an EVENT cannot say when the car leaves
    assert frigate.decode(FRIGATE_REVIEWS, sample("frigate/review_new_car_detection.json")) == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda m: m["after"].pop("data"), "missing_field"),
        (lambda m: m["after"].update(data=[]), "wrong_type"),
        (lambda m: m["after"]["data"].update(zones="restricted"), "wrong_type"),
        (lambda m: m["after"]["data"].update(objects="person"), "wrong_type"),
        (lambda m: m["after"].update(camera="../x"), "bad_value"),
        (lambda m: m.update(type="genai"), "bad_value"),
    ],
)
def test_frigate_review_errors(mutate: Any, expected: str) -> None:
    msg = json.loads(sample("frigate/review_new_person_restricted.json"))
    mutate(msg)
    assert reason(frigate.decode, FRIGATE_REVIEWS, json.dumps(msg).encode()) == expected


# ---------------------------------------------------------------- shared helpers and table


def test_coerce_value_and_timestamps() -> None:
    assert coerce_value("battery", " 87 ") == 87
    assert coerce_value("voltage", "3.3") == 3.3
    assert reason(coerce_value, "battery", "8_7") == "wrong_type"
    assert reason(coerce_value, "battery", "٨٧") == "wrong_type"  # non-ASCII digits
    assert reason(coerce_value, "temperature", "9" * 40) == "wrong_type"
    assert reason(coerce_value, "temperature", 10**20) == "bad_value"
    assert parse_timestamp_ms("2024-05-01T10:00:00.823500726+00:00") == 1714557600823
    assert parse_timestamp_ms("2024-05-01T12:00:00+02:00") == 1714557600000
    assert reason(parse_timestamp_ms, "2024-05-01T10:00:00.1Z" + "0" * 60) == "bad_value"
    assert reason(parse_timestamp_ms, True) == "wrong_type"


def test_table_decode_convenience() -> None:
    assert drivers.decode("zigbee2mqtt", "zigbee2mqtt/d", b'{"contact": true}')[0].values == {"contact": True}
    assert reason(drivers.decode, "zwave", "zwave/d", b"{}") == "unsupported"
    assert reason(drivers.decode, None, "zwave/d", b"{}") == "unsupported"
