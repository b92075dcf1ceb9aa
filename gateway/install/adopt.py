"""Adopt a device "seen, not configured" into the site file (console and ``edge-gateway adopt``).

The site file is edited round-trip with ruamel.yaml: the new stanza is appended to ``devices``,
every comment and the order of keys elsewhere are kept. The result is validated with
:func:`edge_config.load_config` *before* the file is replaced (a temporary file next to it, fsync,
rename), so an adoption never leaves an invalid or half-written site file. The running gateway
picks the device up at the next reload (SIGHUP or the installer API).
"""

from __future__ import annotations

import datetime as dt
import io
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from gateway.errors import InputError


class AdoptError(InputError):
    code = "adopt_refused"

    def __init__(self, message: str, issues: list[str] | None = None) -> None:
        super().__init__(message + ("\n" + "\n".join(issues) if issues else ""))
        self.issues = issues or []


@dataclass
class Adoption:
    id: str
    driver: str
    address: str
    type: str
    name: str = ""
    friendly_name: str | None = None
    resident: str | None = None
    location: dict[str, Any] = field(default_factory=dict)  # building, unit, floor, room, parking_space, area
    source: str = "cli"


def from_store(store_path: str | Path, address: str, driver: str | None = None) -> dict[str, Any]:
    """The unconfigured table's row for ``address``: driver, address, friendly name, sample, counts.

    A Zigbee2MQTT device seen only by its friendly name (``name:<friendly>``) is resolved to its
    IEEE address through the names learned from ``zigbee2mqtt/bridge/devices``.
    """
    conn = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=5)
    try:
        addr = address.strip().lower()
        q = "SELECT driver, address, count, last_topic, sample, first_seen_ms, last_seen_ms FROM unconfigured"
        # a Zigbee2MQTT device whose name the bridge resolved is listed by its IEEE address
        named = [str(r[0]) for r in conn.execute("SELECT address FROM aliases WHERE alias=?", (address,))]
        keys = (addr, address, f"name:{address}", *named)
        rows = conn.execute(q + f" WHERE address IN ({','.join('?' * len(keys))})", keys).fetchall()
        if driver is not None:
            rows = [r for r in rows if r[0] == driver]
        if not rows:
            raise AdoptError(
                f"{address!r} is not in the 'seen, not configured' list of {store_path} "
                "(edge-gateway status shows how many there are; the console lists them)"
            )
        if len(rows) > 1:
            raise AdoptError(
                f"{address!r} was seen by several drivers ({', '.join(r[0] for r in rows)}); give --driver"
            )
        drv, seen, count, topic, sample, first_ms, last_ms = rows[0]
        friendly = None
        if seen.startswith("name:"):
            friendly = seen[5:]
            row = conn.execute("SELECT address FROM aliases WHERE driver=? AND alias=?", (drv, friendly)).fetchone()
            if row is None:
                raise AdoptError(
                    f"{address!r} was seen only by its Zigbee2MQTT friendly name; its IEEE address is not known "
                    "yet (Zigbee2MQTT publishes it on zigbee2mqtt/bridge/devices): give --address 0x..."
                )
            seen = str(row[0])
        elif drv == "zigbee2mqtt":
            row = conn.execute("SELECT alias FROM aliases WHERE driver=? AND address=?", (drv, seen)).fetchone()
            friendly = str(row[0]) if row else None
    finally:
        conn.close()
    return {
        "driver": drv,
        "address": seen,
        "friendly_name": friendly,
        "count": count,
        "last_topic": topic,
        "sample": sample,
        "first_seen_ms": first_ms,
        "last_seen_ms": last_ms,
    }


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)
    # keep explicit nulls as written ("tls: null"), not as empty values
    y.representer.add_representer(type(None), lambda r, d: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    return y


def stanza(a: Adoption) -> CommentedMap:
    m = CommentedMap()
    m["id"] = a.id
    if a.name:
        m["name"] = a.name
    m["driver"] = a.driver
    m["address"] = a.address
    m["type"] = a.type
    loc = {k: v for k, v in a.location.items() if v is not None}
    if loc:
        lm = CommentedMap(loc)
        lm.fa.set_flow_style()
        m["location"] = lm
    if a.friendly_name:
        m["friendly_name"] = a.friendly_name
    if a.resident:
        m["resident"] = a.resident
    return m


def adopt(config_path: str | Path, a: Adoption, *, env: dict[str, str] | None = None) -> str:
    """Append the device to the site file (validated, atomic). Returns the stanza as written."""
    from edge_config import ConfigError, load_config

    path = Path(config_path)
    try:  # the file as it is must be valid: a YAML error's own text would quote its values
        load_config(path, env=env)
    except ConfigError as exc:
        raise AdoptError(f"{path} is not valid now; fix it first", [i.format() for i in exc.issues]) from None
    y = _yaml()
    text = path.read_text(encoding="utf-8")
    doc = y.load(text)
    if not isinstance(doc, CommentedMap):
        raise AdoptError(f"{path}: not a site file (no top-level mapping)")
    devices = doc.get("devices")
    if devices is None:
        devices = CommentedSeq()
        doc["devices"] = devices
    if any(isinstance(d, dict) and d.get("id") == a.id for d in devices):
        raise AdoptError(f"device id {a.id!r} is already in {path}; choose another --id")
    for i, d in enumerate(devices):
        if (
            isinstance(d, dict)
            and d.get("driver") == a.driver
            and str(d.get("address", "")).lower() == a.address.lower()
        ):  # the position, not the id: messages quote the command line, never the file
            raise AdoptError(f"{a.driver} address {a.address} is already configured as devices[{i}]")
    m = stanza(a)
    devices.append(m)
    today = dt.date.today().isoformat()
    devices.yaml_set_comment_before_after_key(
        len(devices) - 1, before=f"adopted {today} via {a.source} (seen, not configured)", indent=2
    )
    buf = io.StringIO()
    y.dump(doc, buf)
    new_text = buf.getvalue()
    tmp = path.with_name(f".{path.name}.adopt-{os.getpid()}.tmp")
    try:
        _write(tmp, new_text, path)
        try:
            load_config(tmp, env=env)
        except ConfigError as exc:
            raise AdoptError(
                f"the device was NOT added: {path} would not be valid with it",
                [i.format().replace(str(tmp), str(path)) for i in exc.issues],
            ) from None
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    out = io.StringIO()
    _yaml().dump([stanza(a)], out)
    return out.getvalue()


def _write(tmp: Path, text: str, like: Path) -> None:
    mode = like.stat().st_mode & 0o777 if like.exists() else 0o644
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
