"""Config of camera analytics (section ``cameras``); see docs/vision.md.

Each camera names its own device (``devices[]`` entry of type ``camera``, driver ``native``:
availability and intrusion readings go to it), where its frames come from, the reference image
of the empty spaces (``edge-gateway camera calibrate``), the parking spaces it watches (each
with the ``devices[]`` entry, driver ``native``, that carries its ``vehicle_present`` readings and
has ``location.parking_space``) and the restricted zones (armed by the
``rules.intrusion_zones[]`` entry of the same id).

Secrets: a camera URL never carries a password; ``password: "${ENV}"`` is inserted at run time.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from .secrets import EnvSecret

if TYPE_CHECKING:
    from .schema import SiteConfig

_Id = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
_FrigateName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Point = tuple[float, float]


def _check_polygon(value: list[Point]) -> list[Point]:
    if len(value) < 3:
        raise ValueError("a polygon needs at least 3 points [[x, y], ...] in reference-image pixels")
    if any(x < 0 or y < 0 for x, y in value):
        raise ValueError("polygon points are pixel coordinates, never negative")
    area = 0.0
    for (x0, y0), (x1, y1) in zip(value, value[1:] + value[:1], strict=True):
        area += x0 * y1 - x1 * y0
    if abs(area) / 2 < 16:
        raise ValueError("the polygon covers less than 16 pixels; draw it around the whole space or zone")
    return value


class CameraSpace(BaseModel):
    model_config = ConfigDict(extra="forbid")

    space_id: _Id = Field(description="Parking space id (site.parking_areas[].spaces[].id) this polygon covers.")
    device: _Id = Field(
        description="devices[].id that carries this space's vehicle_present readings: driver native, "
        "location.parking_space = space_id (type parking_sensor or camera)."
    )
    polygon: list[Point] = Field(description="Space outline [[x, y], ...] in reference-image pixels (>= 3 points).")

    _poly = field_validator("polygon")(_check_polygon)


class CameraZone(BaseModel):
    model_config = ConfigDict(extra="forbid")

    zone_id: _Id = Field(
        description="rules.intrusion_zones[].id: its armed hours apply and its devices must include the camera's "
        "device."
    )
    polygon: list[Point] = Field(description="Restricted area [[x, y], ...] in reference-image pixels.")
    min_area_pct: float = Field(
        default=1.0, gt=0, le=100, description="Moving pixels needed inside the zone, percent of the zone's area."
    )

    _poly = field_validator("polygon")(_check_polygon)


class CameraSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["mqtt", "http", "rtsp"] = Field(
        description="mqtt: JPEG snapshots on the local broker (native edge/v1/cameras/<id>/snapshot or Frigate "
        "frigate/<camera>/<label>/snapshot); http: poll a snapshot URL; rtsp: sample a stream."
    )
    frigate_camera: _FrigateName | None = Field(
        default=None,
        description="mqtt only: Frigate camera name; snapshots are then taken from frigate/<name>/+/snapshot "
        "(in addition to the native topic).",
    )
    url: str | None = Field(
        default=None,
        description="http(s) snapshot URL or rtsp:// stream URL (a local video file path also works for rtsp, "
        "for tests). No user:password in it: use username and password.",
    )
    username: str | None = Field(default=None, max_length=128, description="Camera user (HTTP basic / RTSP).")
    password: EnvSecret | None = Field(default=None, description='Camera password, ONLY as "${ENV_NAME}".')
    interval_s: float = Field(
        default=10.0, ge=0.2, le=3600, description="http: seconds between polls; rtsp: seconds between sampled frames."
    )
    timeout_s: float = Field(default=5.0, gt=0, le=60, description="http: request timeout in seconds.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.password is not None:
            raise ValueError(
                "the URL carries a password; secrets must not be written into the config file: remove "
                'user:password@ from the URL and set username and password: "${ENV_NAME}"'
            )
        return value

    @model_validator(mode="after")
    def _needs_url(self) -> CameraSource:
        if self.kind in ("http", "rtsp") and not self.url:
            raise ValueError(f"source kind {self.kind} needs url")
        if self.kind == "http" and self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError("an http source needs an http(s):// URL")
        if self.kind != "mqtt" and self.frigate_camera is not None:
            raise ValueError("frigate_camera is only for source kind mqtt")
        return self


class CameraSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: _Id = Field(description="Camera id; the native snapshot topic is edge/v1/cameras/<id>/snapshot.")
    name: str = Field(default="", max_length=100, description="Display name, e.g. '地面停车场东侧摄像头'.")
    device: _Id = Field(
        description="devices[].id of the camera itself (type camera, driver native): availability (camera "
        "silent -> offline) and intrusion (occupancy) readings."
    )
    source: CameraSource = Field(description="Where frames come from.")
    reference_image: Path | None = Field(
        default=None,
        description="JPEG/PNG of the empty spaces at normal daylight (written by `edge-gateway camera calibrate`); "
        "needed for spaces. Relative paths are relative to the gateway's working directory.",
    )
    spaces: list[CameraSpace] = Field(default_factory=list, description="Parking spaces watched by this camera.")
    zones: list[CameraZone] = Field(default_factory=list, description="Restricted zones watched for motion.")
    confirm_frames: int = Field(
        default=2, ge=1, le=20, description="A space changes state only after this many frames agree (debounce)."
    )
    republish_s: int = Field(
        default=300, ge=10, description="Unchanged space states are re-sent this often (liveness for the rules)."
    )
    offline_after_s: int = Field(
        default=120, ge=5, description="No usable frame for this long -> the camera device is reported offline."
    )
    unusable_after_s: int = Field(
        default=600,
        ge=10,
        description="Frames arrive but none is usable (lens covered, fogged over, glared out, frozen) for this "
        "long -> an image_unusable reading for the camera device (device-health incident camera_unusable); "
        "meanwhile its spaces report unknown.",
    )
    max_image_bytes: int = Field(
        default=4_000_000, ge=1024, le=64_000_000, description="Larger snapshots are dead-lettered unread."
    )
    max_pixels: int = Field(
        default=8_300_000, ge=10_000, le=50_000_000, description="Larger images (by their header) are dead-lettered."
    )
    motion_cooldown_s: int = Field(
        default=10, ge=0, description="At most one intrusion reading per zone this often while motion continues."
    )

    @model_validator(mode="after")
    def _spaces_need_reference(self) -> CameraSettings:
        if self.spaces and self.reference_image is None:
            raise ValueError(
                "spaces need reference_image (the empty spaces); run `edge-gateway camera calibrate` and set it"
            )
        ids = [s.space_id for s in self.spaces]
        if len(ids) != len(set(ids)):
            raise ValueError("a space is listed twice for this camera")
        return self


class SnapshotSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Path = Field(default=Path("./data/snapshots"), description="Folder of intrusion snapshots (JPEG, 0600).")
    quota_mb: int = Field(default=200, ge=1, le=100_000, description="Size cap; the oldest snapshots are removed.")


class CamerasSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workers: int = Field(
        default=1, ge=1, le=8, description="Analysis worker processes (one per CPU core to spare; see bench/vision.py)."
    )
    queue_frames: int = Field(
        default=4, ge=1, le=64, description="Frames waiting per worker; beyond this new frames are dropped (counted)."
    )
    snapshots: SnapshotSettings = Field(default_factory=SnapshotSettings, description="Intrusion snapshot store.")
    cameras: list[CameraSettings] = Field(default_factory=list, description="The cameras.")

    @model_validator(mode="after")
    def _unique(self) -> CamerasSettings:
        ids = [c.id for c in self.cameras]
        if len(ids) != len(set(ids)):
            raise ValueError("camera ids must be unique")
        return self


def camera_problems(cfg: SiteConfig) -> list[str]:
    """Cross-checks of ``cfg.cameras`` against devices, spaces and intrusion zones (plain messages).

    Run by the camera manager at start and by ``edge-gateway camera calibrate``."""
    out: list[str] = []
    cams: CamerasSettings = cfg.cameras
    zones = {z.id: z for z in cfg.rules.intrusion_zones}
    for cam in cams.cameras:
        where = f"cameras.cameras[{cam.id}]"
        dev = cfg.device(cam.device)
        if dev is None:
            out.append(
                f"{where}.device: unknown device {cam.device!r}; add a devices[] entry (type camera, driver native)"
            )
        elif dev.driver != "native":
            out.append(f"{where}.device: device {cam.device!r} must use driver native")
        for sp in cam.spaces:
            d = cfg.device(sp.device)
            if cfg.parking_space(sp.space_id) is None:
                out.append(f"{where}.spaces[{sp.space_id}]: unknown parking space; use a parking_areas[].spaces[].id")
            if d is None:
                out.append(f"{where}.spaces[{sp.space_id}].device: unknown device {sp.device!r}")
            elif d.driver != "native" or d.location.parking_space != sp.space_id:
                out.append(
                    f"{where}.spaces[{sp.space_id}].device: device {sp.device!r} must use driver native and have "
                    f"location.parking_space: {sp.space_id}"
                )
        for z in cam.zones:
            rz = zones.get(z.zone_id)
            if rz is None:
                out.append(f"{where}.zones[{z.zone_id}]: no rules.intrusion_zones entry with this id (armed hours)")
            elif cam.device not in rz.devices:
                out.append(f"{where}.zones[{z.zone_id}]: add the camera's device {cam.device!r} to that zone's devices")
    return out
