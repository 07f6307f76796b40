"""Headless Chromium for the tests that need a real browser: load a page, read its DOM."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

#: Mark a module's tests as needing Chromium (Debian package ``chromium``, which CI installs).
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Chromium (Debian package chromium)"
)


async def dump_dom(
    url: str, profile: Path, budget_ms: int = 10_000, flags: tuple[str, ...] = ()
) -> str:
    """The DOM of ``url`` once it has loaded and ``budget_ms`` of virtual time has passed.

    :param profile: An empty directory for the browser's profile.
    :param flags: More command-line flags (``--ignore-certificate-errors``, say).
    """
    assert CHROMIUM is not None
    browser = await asyncio.create_subprocess_exec(
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
        *flags, "--dump-dom", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with asyncio.timeout(45):
            dom, _ = await browser.communicate()
    finally:
        if browser.returncode is None:
            browser.kill()
            await browser.wait()
    return dom.decode()
