"""The site file: one YAML file describing a community, its people and its devices.

>>> from edge_config import load_config, summary
>>> cfg = load_config("edge_config/examples/community.yaml")  # raises ConfigError listing every issue
"""

from .loader import (
    ConfigError,
    ConfigIssue,
    json_schema,
    json_schema_text,
    load_config,
    summary,
    write_json_schema,
)
from .schema import (
    BUILTIN_DEVICE_TYPES,
    Building,
    Channel,
    Compound,
    Device,
    DeviceTypeSettings,
    Grid,
    IngestSettings,
    IngestSource,
    Location,
    MqttSettings,
    MqttTls,
    ParkingArea,
    ParkingSpace,
    Resident,
    Site,
    SiteConfig,
    StaffMember,
    StoreSettings,
    Team,
    known_drivers,
)

__all__ = [
    "BUILTIN_DEVICE_TYPES",
    "Building",
    "Channel",
    "Compound",
    "ConfigError",
    "ConfigIssue",
    "Device",
    "DeviceTypeSettings",
    "Grid",
    "IngestSettings",
    "IngestSource",
    "Location",
    "MqttSettings",
    "MqttTls",
    "ParkingArea",
    "ParkingSpace",
    "Resident",
    "Site",
    "SiteConfig",
    "StaffMember",
    "StoreSettings",
    "Team",
    "json_schema",
    "json_schema_text",
    "known_drivers",
    "load_config",
    "summary",
    "write_json_schema",
]
