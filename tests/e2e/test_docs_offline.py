"""The /docs page renders in Chromium with every host but the service unreachable: call centres
often have no way out to a public CDN, and the page was blank there."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from tests.e2e.test_survey_browser import CONFIG
from tests.support.browser import chromium
from tests.support.services import common_settings, running

pytestmark = pytest.mark.e2e


def operations_rendered(url: str) -> list[str]:
    browser = chromium(["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"])  # nothing outside resolves
    try:
        browser.get(url)
        WebDriverWait(browser, 30).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".opblock")))
        return [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")]
    finally:
        browser.quit()


async def test_the_api_docs_page_needs_nothing_from_outside_kefu(nats_server) -> None:
    async with running(intake_app, IntakeSettings(**common_settings(nats_server.url, config_dir=CONFIG))) as intake:
        async with httpx.AsyncClient(base_url=intake.base_url) as http:
            page = (await http.get("/docs")).text
        paths = await asyncio.to_thread(operations_rendered, f"{intake.base_url}/docs")
    assert "cdn." not in page and "https://" not in page
    assert any("/v1/intake/" in p for p in paths), paths
