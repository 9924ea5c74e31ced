"""The survey page in headless Chromium: open the link, pick a rating with the keyboard, submit,
see the thank-you page; hostile customer text is shown as text."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from services.feedback.app import create_app as feedback_app
from services.feedback.settings import FeedbackSettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared.contract import subjects as s
from tests.support.browser import chromium
from tests.support.services import ADAPTER_KEY, common_settings, running, tap

pytestmark = pytest.mark.e2e
CONFIG = Path(__file__).parents[2] / "config"
HOSTILE = '<script>document.title="pwned"</script><img src=x onerror="document.title=\'pwned\'">'


def answer_in_browser(url: str, screenshot: Path) -> dict[str, object]:
    browser = chromium()
    try:
        browser.get(url)
        seen = {
            "title": browser.title,
            "summary": browser.find_element(By.TAG_NAME, "blockquote").text,
            "lang": browser.find_element(By.TAG_NAME, "html").get_attribute("lang"),
            "labels": [label.text for label in browser.find_elements(By.CSS_SELECTOR, ".rating label")],
            "images": len(browser.find_elements(By.TAG_NAME, "img")),
        }
        # keyboard only: focus the first rating, arrow to 4, tab on to the button and press Enter
        first = browser.find_element(By.ID, "r1")
        first.send_keys(Keys.SPACE)
        for _ in range(3):
            browser.switch_to.active_element.send_keys(Keys.ARROW_DOWN)
        seen["checked"] = browser.find_element(By.CSS_SELECTOR, "input[name=rating]:checked").get_attribute("value")
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").send_keys(Keys.ENTER)
        status = WebDriverWait(browser, 30).until(  # the form post loads the thank-you page
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "[role=status]")))
        seen["after"] = status.text
        seen["title_after"] = browser.title
        browser.save_screenshot(str(screenshot))
        return seen
    finally:
        browser.quit()


async def test_customer_answers_the_survey_page_in_chromium(nats_server, tmp_path) -> None:
    settings = common_settings(nats_server.url, config_dir=CONFIG)
    async with running(intake_app, IntakeSettings(**settings)) as intake, \
            running(routing_app, RoutingSettings(**settings)) as routing, \
            running(feedback_app, FeedbackSettings(**settings)), \
            intake.client(ADAPTER_KEY) as adapter, routing.client() as agent, \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events, \
            tap(nats_server.url, s.STREAM_OUTBOUND, s.OUTBOUND_ALL) as outbound:
        form = {"form_id": "F-xss", "name": HOSTILE, "email": "x@example.cn", "message": "请问积分怎么查询？" + HOSTILE,
                "verified": ["email"]}  # the portal checked the address: the survey may go there
        rid = (await adapter.post("/v1/intake/web", json=form)).json()["request_id"]
        await events.wait_for(s.REQUEST_ASSIGNED, request_id=rid)
        await agent.post(f"/v1/requests/{rid}/resolve", json={"resolution": "已答复"})
        invitation = (await outbound.wait_for("kefu.outbound.web", kind="survey"))[0]
        url = re.search(r"https?://\S+/v1/surveys/\S+", invitation["text"]).group(0)  # the customer's link
        seen = await asyncio.to_thread(answer_in_browser, url, tmp_path / "survey.png")
        answered = (await events.wait_for(s.SURVEY_ANSWERED, request_id=rid))[0]
    assert seen["title"] == seen["title_after"] != "pwned"
    assert HOSTILE in seen["summary"] and seen["images"] == 0  # the markup is text, not elements
    assert seen["lang"] == "zh-CN" and len(seen["labels"]) == 5
    assert seen["checked"] == "4" and seen["after"] == "感谢您的评价！"
    assert answered["rating"] == 4 and answered["via"] == "page"
