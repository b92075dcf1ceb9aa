"""What the console browser tests share: Debian's Chromium driven by Playwright (never a downloaded
browser), sign-in through one-time links issued the way an installer does, screenshots kept in
test-artifacts/ (CI artifacts)."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

from gateway.api import sessions
from gateway.core import store as st
from tests.api_harness import ApiServer
from tests.support import ROOT, service_missing

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
CHROME_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    # the tests play the alarm without a click; the real page unlocks it with the sign-in tap
    "--autoplay-policy=no-user-gesture-required",
]
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


def chromium() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        service_missing("playwright (pip install -e '.[dev]')")
        raise
    if not shutil.which(CHROMIUM):
        service_missing("Debian chromium (scripts/system-deps.sh)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROME_ARGS)
        try:
            yield b
        finally:
            b.close()


def issue_link(srv: ApiServer, person: str, role: str | None = None, ttl_s: int = 600) -> str:
    member = srv.cfg.staff_member(person)
    assert member is not None
    return sessions.cli_issue_link(
        srv.db,
        person=person,
        role=role or member.role,
        grids=member.grids,
        compounds=member.compounds,
        ttl_s=ttl_s,
    )


def errors_of(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def real_errors(errors: list[str]) -> list[str]:
    """Console errors other than the expected refusals (a 401 before signing in, favicon)."""
    return [e for e in errors if "favicon" not in e and "401" not in e and "status of 403" not in e]


def open_console(
    browser: Any, srv: ApiServer, person: str, *, role: str | None = None, lang: str = "zh", **ctx_kw: Any
) -> Any:
    """A new browser context (its own cookie jar) signed in as ``person`` from a one-time link."""
    context = browser.new_context(locale="zh-CN" if lang == "zh" else "en-US", **ctx_kw)
    context.grant_permissions(["notifications"], origin=srv.base)
    page = context.new_page()
    page.errors = errors_of(page)
    if lang == "en":
        page.add_init_script("localStorage.setItem('egw-lang', 'en')")
    page.goto(f"{srv.base}/console/#signin={issue_link(srv, person, role)}")
    page.wait_for_selector("body[data-state='signed-in'][data-live='1']", timeout=15_000)
    return page


def shot(page: Any, name: str, full: bool = True) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full)


def ringing(page: Any) -> bool:
    return bool(page.evaluate("!document.getElementById('siren').paused"))


def in_pipeline(srv: ApiServer, fn: Callable[[sqlite3.Connection, Any, int], Any]) -> Any:
    return srv.gw.pipeline.call(fn).result(15)


def now_ms() -> int:
    return st.now_ms()
