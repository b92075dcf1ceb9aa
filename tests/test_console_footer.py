"""The console's footer shows the gateway's id and version from /healthz, in a real headless
Chromium, before anyone signs in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway import __version__
from gateway.install.mosquitto import Mosquitto
from tests.api_harness import ApiServer, write_api_site
from tests.console_helpers import errors_of, real_errors
from tests.test_console_browser import browser  # noqa: F401 - the fixture

pytestmark = pytest.mark.broker


def test_footer_shows_gateway_and_version(browser: Any, tmp_path: Path, private_broker: Mosquitto) -> None:  # noqa: F811
    srv = ApiServer(write_api_site(tmp_path, private_broker.port), tmp_path / "gateway.db").start()
    try:
        page = browser.new_page()
        errors = errors_of(page)
        page.goto(f"{srv.base}/console/")
        page.wait_for_function("document.getElementById('build').textContent.length > 0", timeout=10_000)
        assert page.text_content("#build") == f"gw-test · v{__version__}"
        assert real_errors(errors) == []
    finally:
        srv.stop()
