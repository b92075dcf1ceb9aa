"""Byte decoder for the community's geomagnetic parking sensor status uplink (LoRaWAN fPort 2).

Used by the ChirpStack driver when the uplink carries no codec-decoded ``object`` (no device
profile codec configured). The layout follows the usual single-frame geomagnetic parking
sensors (flags byte, battery byte, magnetometer delta, temperature); it is specified in
docs/drivers.md ("Parking sensor uplink, fPort 2") and the sensor firmware must match it.

Layout, exactly 5 bytes, multi-byte fields big-endian::

    byte 0   flags   bit0 occupied (vehicle present)
                     bit1 tamper   (strong magnet / magnetic interference detected)
                     bit2 battery_low
                     bit3..6 reserved (ignored, must be sent as 0)
                     bit7 heartbeat (1 = periodic heartbeat, 0 = sent on a state change)
    byte 1   battery percent 0..100; 0xFF = not measured; 101..254 -> bad_value
    byte 2-3 int16 magnetic field delta from the calibrated empty-bay baseline, in uT x 0.1
    byte 4   int8 temperature in degrees C; 0x80 (-128) = not measured

Example: ``01 5A FF 38 15`` -> occupied, no tamper, battery 90 %, delta -200 (-20.0 uT),
21 degrees C, change-triggered. Base64 in ChirpStack ``data``: ``AVr/OBU=``.
"""

from __future__ import annotations

from typing import Any

from drivers.base import DecodeError

STATUS_FPORT = 2
STATUS_LEN = 5
_FLAG_OCCUPIED = 0x01
_FLAG_TAMPER = 0x02
_FLAG_BATTERY_LOW = 0x04
_FLAG_HEARTBEAT = 0x80


def decode_status(data: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``(values, meta)``: canonical values and the non-canonical extras
    (``heartbeat``: bool, ``mag_delta``: int in 0.1 uT)."""
    if len(data) != STATUS_LEN:
        raise DecodeError("bad_value", f"parking status frame is {len(data)} bytes, expected {STATUS_LEN}")
    flags = data[0]
    values: dict[str, Any] = {
        "vehicle_present": bool(flags & _FLAG_OCCUPIED),
        "tamper": bool(flags & _FLAG_TAMPER),
        "battery_low": bool(flags & _FLAG_BATTERY_LOW),
    }
    battery = data[1]
    if battery != 0xFF:
        if battery > 100:
            raise DecodeError("bad_value", f"parking status battery {battery} % > 100")
        values["battery"] = battery
    temp = data[4] - 256 if data[4] >= 0x80 else data[4]
    if temp != -128:
        values["temperature"] = temp
    mag = (data[2] << 8) | data[3]
    if mag >= 0x8000:
        mag -= 0x10000
    meta = {"heartbeat": bool(flags & _FLAG_HEARTBEAT), "mag_delta": mag}
    return values, meta
