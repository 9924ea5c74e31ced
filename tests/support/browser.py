"""Debian's chromium, headless, driven through its chromedriver (selenium; no browser download)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

PHONE = (390, 844)
LAPTOP = (1366, 900)
TABLET = (820, 1180)


def chromium(extra: list[str] | None = None, *, size: tuple[int, int] = PHONE, lang: str | None = None) -> webdriver.Chrome:
    """`lang`: the browser's language (navigator.language and Accept-Language), e.g. zh-CN."""
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert binary and driver, "Debian's chromium and chromium-driver are needed (.ci/run installs them)"
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--window-size={size[0]},{size[1]}", *(extra or [])):
        options.add_argument(flag)
    if lang:
        options.add_argument(f"--lang={lang}")
        options.add_experimental_option("prefs", {"intl.accept_languages": lang})
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


def artefacts() -> Path:
    """Where browser tests keep their screenshots for CI to collect (KEFU_TEST_ARTEFACTS, else var/artefacts)."""
    path = Path(os.environ.get("KEFU_TEST_ARTEFACTS", Path(__file__).parents[2] / "var" / "artefacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path
