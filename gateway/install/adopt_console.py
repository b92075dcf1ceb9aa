"""Adoption for the console's installer page (POST /api/v1/adopt).

The API sits below the installer tools in the import layers (docs/architecture.md), so it cannot
call gateway/install/adopt.py itself: whoever starts the gateway with its API (``edge-gateway
run``, the demo) hands this function down as ``gw.site_adopter``. It is the CLI's path exactly:
the device is looked up in the store's "seen, not configured" list (``from_store``: driver,
IEEE address of a Zigbee friendly name) and appended by ``adopt`` (comment-preserving, validated
before the file is replaced).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def site_adopter(config_path: Path, store_path: Path, fields: dict[str, Any]) -> str:
    """Append the device described by ``fields`` (id, driver, address, type, name, location,
    resident) to the site file; returns the stanza as written. Raises AdoptError."""
    # Imported on use: its YAML editor (ruamel) is ~10 ms of CPU that `gateway run` need not pay at start.
    from gateway.install.adopt import Adoption, adopt, from_store

    seen = from_store(store_path, str(fields["address"]), fields.get("driver"))
    return adopt(
        config_path,
        Adoption(
            id=str(fields["id"]),
            driver=seen["driver"],
            address=seen["address"],
            type=str(fields["type"]),
            name=str(fields.get("name") or ""),
            friendly_name=seen["friendly_name"],
            resident=fields.get("resident"),
            location=dict(fields.get("location") or {}),
            source="console",
        ),
    )
