"""A gateway with the residents' loop on: the real broker, the API on uvicorn, and the SMS test
receiver (tests/channels_receivers.py) standing in for the site's SMS gateway."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gateway.install.mosquitto import free_port
from tests import console_helpers
from tests.api_harness import ApiServer, write_api_site
from tests.channels_receivers import SmsReceiver
from tests.conftest import MINI_DEVICES

SMS_AUTH = "Bearer resident-sms-token"
RESIDENT_PHONE = "13900000001"
# A phone: the size of a common Android handset, touch, 3x pixels, a mobile browser's user agent.
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
    "locale": "zh-CN",
    "user_agent": "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0 Mobile Safari/537.36",
}
LINK = re.compile(r"https?://\S+#[A-Za-z0-9_.-]+")

RESIDENT_YAML = """
channels:
  sms:
    url: "{sms}/sms"
    auth_header: "${{RESIDENT_SMS_AUTH}}"
    ok_field: code
    ok_value: 0
resident_loop:
  enabled: true
  base_url: "http://127.0.0.1:{api_port}"
  requests_per_minute: 600
  report:
    per_qr_per_hour: {per_qr}
    per_phone_per_day: 3
{extra}"""


def write_resident_site(
    directory: Path, broker_port: int, sms_url: str, api_port: int, *, per_qr: int = 20, extra: str = ""
) -> Path:
    path = write_api_site(directory, broker_port, devices=MINI_DEVICES)
    text = path.read_text(encoding="utf-8")
    # the elder-care resident has a phone: the evaluation link goes there
    text = text.replace("    eldercare_worker: ec1\n", f"    eldercare_worker: ec1\n    phone: '{RESIDENT_PHONE}'\n", 1)
    text += RESIDENT_YAML.format(sms=sms_url, api_port=api_port, per_qr=per_qr, extra=extra)
    path.write_text(text, encoding="utf-8")
    return path


class ResidentEnv:
    def __init__(self, tmp: Path, broker_port: int, **kw: Any) -> None:
        self.sms = SmsReceiver(SMS_AUTH)
        port = free_port()
        site = write_resident_site(tmp, broker_port, self.sms.base_url, port, **kw)
        self.srv = ApiServer(site, tmp / "gateway.db")
        self.srv.port, self.srv.base = port, f"http://127.0.0.1:{port}"

    def start(self) -> ResidentEnv:
        self.srv.start()
        return self

    def stop(self) -> None:
        self.srv.stop()
        self.sms.close()

    def texts_to(self, phone: str) -> list[str]:
        return [str(h.body.get("text")) for h in self.sms.ok_hits() if h.body.get("to") == phone]

    def links_to(self, phone: str) -> list[str]:
        return [m.group(0) for text in self.texts_to(phone) for m in [LINK.search(text)] if m is not None]


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium through Playwright (tests/console_helpers.py), as a context manager."""
    yield from console_helpers.chromium()


def page_errors(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors
