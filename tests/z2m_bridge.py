"""A generated ``zigbee2mqtt/bridge/devices`` message in the published Zigbee2MQTT format.

Format: the Zigbee2MQTT MQTT API page (zigbee2mqtt.io, guide/usage/mqtt_topics_and_messages,
"zigbee2mqtt/bridge/devices") and its Exposes page: one entry per device with ``ieee_address``,
``type``, ``network_address``, ``supported``, ``friendly_name``, ``endpoints`` (bindings,
configured reportings, clusters), ``definition`` (model, vendor, description, ``exposes`` and
``options``, both lists of expose objects) or null when unsupported, ``power_source``,
``model_id``, ``manufacturer``, ``date_code``, ``software_build_id``, ``interviewing`` and
``interview_completed``; the coordinator first. The expose objects below follow what
zigbee-herdsman-converters publishes for these models (names, labels, access bits, units,
ranges, descriptions, diagnostic categories), which is what makes the real message hundreds of
KB on a network of a hundred or two devices.
"""

from __future__ import annotations

import json
import random
from typing import Any

LQI = {
    "type": "numeric",
    "name": "linkquality",
    "label": "Linkquality",
    "property": "linkquality",
    "access": 1,
    "unit": "lqi",
    "value_min": 0,
    "value_max": 255,
    "description": "Link quality (signal strength)",
    "category": "diagnostic",
}


def _numeric(
    name: str, label: str, unit: str | None, lo: float | None, hi: float | None, desc: str, **kw: Any
) -> dict[str, Any]:
    e: dict[str, Any] = {
        "type": "numeric",
        "name": name,
        "label": label,
        "property": name,
        "access": kw.pop("access", 1),
    }
    if unit is not None:
        e["unit"] = unit
    if lo is not None:
        e["value_min"] = lo
    if hi is not None:
        e["value_max"] = hi
    e["description"] = desc
    e.update(kw)
    return e


def _binary(name: str, label: str, on: Any, off: Any, desc: str, access: int = 1, **kw: Any) -> dict[str, Any]:
    return {
        "type": "binary",
        "name": name,
        "label": label,
        "property": name,
        "access": access,
        "value_on": on,
        "value_off": off,
        "description": desc,
        **kw,
    }


def _enum(name: str, label: str, values: list[str], desc: str, access: int = 1, **kw: Any) -> dict[str, Any]:
    return {
        "type": "enum",
        "name": name,
        "label": label,
        "property": name,
        "access": access,
        "values": values,
        "description": desc,
        **kw,
    }


BATTERY = _numeric(
    "battery",
    "Battery",
    "%",
    0,
    100,
    "Remaining battery in %, can take up to 24 hours before reported",
    category="diagnostic",
)
VOLTAGE = _numeric(
    "voltage", "Voltage", "mV", None, None, "Voltage of the battery in millivolts", category="diagnostic"
)
DEVICE_TEMP = _numeric(
    "device_temperature", "Device temperature", "°C", -20, 60, "Temperature of the device", category="diagnostic"
)
OUTAGES = _numeric(
    "power_outage_count",
    "Power outage count",
    None,
    None,
    None,
    "Number of power outages (since last pairing)",
    category="diagnostic",
)
TEMP_CAL = _numeric(
    "temperature_calibration",
    "Temperature calibration",
    None,
    None,
    None,
    "Calibrates the temperature value (absolute offset), takes into effect on next report of device.",
    access=2,
)
TEMP_PREC = _numeric(
    "temperature_precision",
    "Temperature precision",
    None,
    0,
    3,
    "Number of digits after decimal point for temperature, takes into effect on next report of device.",
    access=2,
)
OCC_TIMEOUT = _numeric(
    "occupancy_timeout",
    "Occupancy timeout",
    None,
    0,
    None,
    "Time in seconds after which occupancy is cleared after detecting it (default 90 seconds).",
    access=2,
)
NO_OCC_SINCE = {
    "type": "list",
    "name": "no_occupancy_since",
    "label": "No occupancy since",
    "property": "no_occupancy_since",
    "access": 2,
    "item_type": {"type": "numeric", "name": "time", "label": "Time", "access": 3},
    "description": "Sends a message the last time occupancy (occupancy: true) was detected. When setting this "
    'for example to [10, 60] a `{"no_occupancy_since": 10}` will be send after 10 seconds and a '
    '`{"no_occupancy_since": 60}` after 60 seconds.',
}

MODELS: list[dict[str, Any]] = [
    {
        "model": "MCCGQ11LM",
        "vendor": "Aqara",
        "description": "Door and window sensor",
        "model_id": "lumi.sensor_magnet.aq2",
        "manufacturer": "LUMI",
        "power_source": "Battery",
        "type": "EndDevice",
        "date_code": "20161128",
        "build": "3000-0001",
        "clusters": (["genBasic", "genOnOff"], ["genGroups"]),
        "exposes": [
            _binary("contact", "Contact", False, True, "Indicates whether the device is opened or closed"),
            BATTERY,
            VOLTAGE,
            DEVICE_TEMP,
            OUTAGES,
            _numeric(
                "trigger_count",
                "Trigger count",
                None,
                None,
                None,
                "Indicates how many times the sensor was triggered (since last scheduled report)",
                category="diagnostic",
            ),
            LQI,
        ],
        "options": [TEMP_CAL, TEMP_PREC],
    },
    {
        "model": "RTCGQ11LM",
        "vendor": "Aqara",
        "description": "Motion sensor",
        "model_id": "lumi.sensor_motion.aq2",
        "manufacturer": "LUMI",
        "power_source": "Battery",
        "type": "EndDevice",
        "date_code": "20170627",
        "build": "3000-0001",
        "clusters": (["genBasic", "msOccupancySensing", "msIlluminanceMeasurement"], ["genGroups"]),
        "exposes": [
            _binary("occupancy", "Occupancy", True, False, "Indicates whether the device detected occupancy"),
            _numeric("illuminance", "Illuminance", "lx", None, None, "Measured illuminance"),
            BATTERY,
            VOLTAGE,
            DEVICE_TEMP,
            OUTAGES,
            _numeric(
                "trigger_count",
                "Trigger count",
                None,
                None,
                None,
                "Indicates how many times the sensor was triggered (since last scheduled report)",
                category="diagnostic",
            ),
            LQI,
        ],
        "options": [
            TEMP_CAL,
            TEMP_PREC,
            OCC_TIMEOUT,
            NO_OCC_SINCE,
            _numeric(
                "illuminance_calibration",
                "Illuminance calibration",
                "%",
                None,
                None,
                "Calibrates the illuminance value (percentual offset), takes into effect on next report of device.",
                access=2,
            ),
        ],
    },
    {
        "model": "TS0601_fall_radar",
        "vendor": "Tuya",
        "description": "Human presence and fall detection radar",
        "model_id": "TS0601",
        "manufacturer": "_TZE200_2aaelwxk",
        "power_source": "Mains (single phase)",
        "type": "Router",
        "date_code": "",
        "build": None,
        "clusters": (["genBasic", "genGroups", "genScenes", "manuSpecificTuya"], ["genOta", "genTime"]),
        "exposes": [
            _binary("presence", "Presence", True, False, "Indicates whether the device detected presence"),
            _enum(
                "motion_state",
                "Motion state",
                ["none", "large", "small", "static"],
                "Motion state of the person in range",
            ),
            _enum("fall_down_status", "Fall down status", ["none", "maybe_fall", "fall"], "Fall down status"),
            _numeric(
                "radar_sensitivity",
                "Radar sensitivity",
                None,
                0,
                10,
                "Sensitivity of the radar",
                access=3,
                value_step=1,
            ),
            _numeric(
                "fall_sensitivity",
                "Fall sensitivity",
                None,
                1,
                10,
                "Sensitivity of the fall detection",
                access=3,
                value_step=1,
            ),
            _numeric(
                "tumble_alarm_time",
                "Tumble alarm time",
                "min",
                1,
                5,
                "Time after which a tumble is reported as a fall",
                access=3,
            ),
            _numeric(
                "installation_height",
                "Installation height",
                "m",
                1,
                3.5,
                "Height of the radar above the floor",
                access=3,
                value_step=0.1,
            ),
            _enum(
                "radar_scene",
                "Radar scene",
                ["default", "area", "toilet", "bedroom", "parlour", "office", "hotel"],
                "Presets for sensitivity for presence and movement",
                access=3,
            ),
            _binary(
                "fall_down_detection",
                "Fall down detection",
                "ON",
                "OFF",
                "Whether fall down detection is enabled",
                access=3,
            ),
            _binary(
                "static_dwell_alarm",
                "Static dwell alarm",
                "ON",
                "OFF",
                "Alarm when a person stays still too long",
                access=3,
            ),
            _enum(
                "self_test",
                "Self test",
                ["checking", "check_success", "check_failure", "others", "comm_fault", "radar_fault"],
                "Self test result of the radar",
                category="diagnostic",
            ),
            LQI,
        ],
        "options": [],
    },
    {
        "model": "HS1SA",
        "vendor": "HEIMAN",
        "description": "Smoke detector",
        "model_id": "SmokeSensor-N-3.0",
        "manufacturer": "HEIMAN",
        "power_source": "Battery",
        "type": "EndDevice",
        "date_code": "2019.07.22",
        "build": None,
        "clusters": (["genBasic", "genPowerCfg", "genIdentify", "ssIasZone", "ssIasWd"], ["genOta"]),
        "exposes": [
            _binary("smoke", "Smoke", True, False, "Indicates whether the device detected smoke"),
            _binary(
                "battery_low",
                "Battery low",
                True,
                False,
                "Indicates if the battery of this device is almost empty",
                category="diagnostic",
            ),
            _binary("test", "Test", True, False, "Indicates whether the device is being tested", category="diagnostic"),
            _binary("tamper", "Tamper", True, False, "Indicates whether the device is tampered"),
            BATTERY,
            LQI,
        ],
        "options": [],
    },
    {
        "model": "TS011F_plug_1",
        "vendor": "Tuya",
        "description": "Smart plug (with power monitoring)",
        "model_id": "TS011F",
        "manufacturer": "_TZ3000_w0qqde0g",
        "power_source": "Mains (single phase)",
        "type": "Router",
        "date_code": "",
        "build": None,
        "clusters": (
            [
                "genBasic",
                "genIdentify",
                "genGroups",
                "genScenes",
                "genOnOff",
                "haElectricalMeasurement",
                "seMetering",
                "manuSpecificTuya",
            ],
            ["genOta", "genTime"],
        ),
        "exposes": [
            {
                "type": "switch",
                "features": [
                    _binary(
                        "state", "State", "ON", "OFF", "On/off state of the switch", access=7, value_toggle="TOGGLE"
                    )
                ],
            },
            _enum(
                "power_outage_memory",
                "Power-on behavior",
                ["on", "off", "restore"],
                "Recover state after power outage",
                access=7,
            ),
            _enum(
                "indicator_mode", "Indicator mode", ["off", "off/on", "on/off", "on"], "LED indicator mode", access=7
            ),
            _numeric("power", "Power", "W", None, None, "Instantaneous measured power", access=5),
            _numeric("current", "Current", "A", None, None, "Instantaneous measured electrical current", access=5),
            _numeric("voltage", "Voltage", "V", None, None, "Measured electrical potential value", access=5),
            _numeric("energy", "Energy", "kWh", None, None, "Sum of consumed energy", access=5),
            _binary(
                "child_lock", "Child lock", "LOCK", "UNLOCK", "Enables/disables physical input on the device", access=7
            ),
            LQI,
        ],
        "options": [
            _numeric(
                "power_calibration",
                "Power calibration",
                "%",
                None,
                None,
                "Calibrates the power value (percentual offset), takes into effect on next report of device.",
                access=2,
            ),
            _numeric(
                "power_precision",
                "Power precision",
                None,
                0,
                3,
                "Number of digits after decimal point for power, takes into effect on next report of device.",
                access=2,
            ),
            _numeric(
                "current_calibration",
                "Current calibration",
                "%",
                None,
                None,
                "Calibrates the current value (percentual offset), takes into effect on next report of device.",
                access=2,
            ),
            _numeric(
                "energy_precision",
                "Energy precision",
                None,
                0,
                3,
                "Number of digits after decimal point for energy, takes into effect on next report of device.",
                access=2,
            ),
            _binary(
                "state_action",
                "State action",
                True,
                False,
                "State actions will also be published as 'action' when true (default false).",
                access=2,
            ),
        ],
    },
]


def _endpoints(model: dict[str, Any], rng: random.Random, coordinator: str) -> dict[str, Any]:
    inputs, outputs = model["clusters"]
    reportings = [
        {
            "cluster": c,
            "attribute": attr,
            "minimum_report_interval": 10,
            "maximum_report_interval": rng.choice((300, 3600, 62000)),
            "reportable_change": 1,
        }
        for c, attr in (("genPowerCfg", "batteryPercentageRemaining"), ("genOnOff", "onOff"))
        if c in inputs
    ]
    bindings = [
        {"cluster": c, "target": {"type": "endpoint", "endpoint": 1, "ieee_address": coordinator}}
        for c in inputs
        if c in ("genPowerCfg", "genOnOff", "haElectricalMeasurement", "seMetering")
    ]
    return {
        "1": {
            "name": None,
            "bindings": bindings,
            "configured_reportings": reportings,
            "clusters": {"input": inputs, "output": outputs},
            "scenes": [],
        }
    }


def device_entry(
    ieee: str, friendly_name: str, model: dict[str, Any], rng: random.Random, coordinator: str
) -> dict[str, Any]:
    return {
        "ieee_address": ieee,
        "type": model["type"],
        "network_address": rng.randrange(1, 0xFFF8),
        "supported": True,
        "disabled": False,
        "friendly_name": friendly_name,
        "description": None,
        "endpoints": _endpoints(model, rng, coordinator),
        "definition": {
            "source": "native",
            "model": model["model"],
            "vendor": model["vendor"],
            "description": model["description"],
            "exposes": model["exposes"],
            "supports_ota": model["type"] == "Router",
            "options": model["options"],
            "icon": None,
        },
        "power_source": model["power_source"],
        "software_build_id": model["build"],
        "date_code": model["date_code"],
        "model_id": model["model_id"],
        "manufacturer": model["manufacturer"],
        "interview_state": "SUCCESSFUL",
        "interview_completed": True,
        "interviewing": False,
    }


def bridge_devices(named: dict[str, str], total: int, seed: int = 7) -> list[dict[str, Any]]:
    """The coordinator, then ``named`` (IEEE address -> friendly name), then generated devices up
    to ``total`` (coordinator excluded), each of one of the models above."""
    rng = random.Random(seed)
    coordinator = "0x00124b0022aa3b5c"
    out: list[dict[str, Any]] = [
        {
            "ieee_address": coordinator,
            "type": "Coordinator",
            "network_address": 0,
            "supported": True,
            "disabled": False,
            "friendly_name": "Coordinator",
            "description": None,
            "endpoints": {"1": {"bindings": [], "configured_reportings": [], "clusters": {"input": [], "output": []}}},
            "definition": None,
            "power_source": None,
            "interview_completed": True,
            "interviewing": False,
        }
    ]
    for ieee, name in named.items():
        out.append(device_entry(ieee, name, MODELS[0], rng, coordinator))
    n = 0
    while len(out) - 1 < total:
        model = MODELS[n % len(MODELS)]
        ieee = f"0x{rng.getrandbits(64):016x}"
        out.append(
            device_entry(ieee, f"b{n % 12 + 1}/u{n % 4 + 1}/{model['model'].lower()}_{n}", model, rng, coordinator)
        )
        n += 1
    return out


def payload(devices: list[dict[str, Any]]) -> bytes:
    # Zigbee2MQTT publishes the list as compact JSON (JSON.stringify, no indentation).
    return json.dumps(devices, separators=(",", ":"), ensure_ascii=False).encode()
