"""The console in headless Chromium against the real services on a real nats-server.

An agent (zh) signs in with a token from POST /v1/tokens, receives an offer live, accepts,
replies, sees the customer's follow-up appear live, resolves, and the survey goes out; the
customer's markup shows as text; another department's request typed as a URL is not shown. A
supervisor (en) sees the queue change and an emergency arrive on top, and sets an agent away.
Screenshots at laptop and tablet size, in both languages, are kept for CI (tests/support/browser.py)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import nats
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from devtools.payloads import payload
from services.console.app import create_app as console_app
from services.console.settings import ConsoleSettings
from services.feedback.app import create_app as feedback_app
from services.feedback.settings import FeedbackSettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.metrics.app import create_app as metrics_app
from services.metrics.settings import MetricsSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared.contract import subjects as s
from shared.contract.enums import Channel
from tests.support.browser import LAPTOP, TABLET, artefacts, chromium
from tests.support.services import ADAPTER_KEY, ADMIN_TOKEN, common_settings, running, staff_token, tap

pytestmark = pytest.mark.e2e
CONFIG = Path(__file__).parents[2] / "config"
HOSTILE = '<img src=x onerror="document.title=\'pwned\'"><b>粗体</b>'
INQUIRY = "请问会员积分怎么查询？" + HOSTILE  # business.normal
FOLLOW_UP = "还有，积分什么时候过期？<script>document.title='pwned'</script>"
QUALITY = "The jacket's zipper broke the first time I used it. Very disappointed with the quality."
GAS = "家里燃气泄漏了，闻到很大的煤气味，怎么办"
PHONE = "+8613800138077"


def wait(browser: WebDriver, what: Callable[[WebDriver], Any], timeout: float = 30) -> Any:
    try:
        return WebDriverWait(browser, timeout).until(what)
    except Exception:  # what the page showed instead, for the CI log and artefacts
        print("page text:", browser.find_element(By.TAG_NAME, "body").text)
        browser.save_screenshot(str(artefacts() / "console-failure.png"))
        raise


def css(selector: str) -> Callable[[WebDriver], Any]:
    def found(browser: WebDriver) -> Any:
        hits = browser.find_elements(By.CSS_SELECTOR, selector)
        return hits[0] if hits else False
    return found


def text_in(selector: str, text: str) -> Callable[[WebDriver], bool]:
    return lambda b: any(text in e.text for e in b.find_elements(By.CSS_SELECTOR, selector))


def sign_in(browser: WebDriver, url: str, token: str) -> None:
    browser.get(url)
    field = wait(browser, css("#token"))
    field.send_keys(token)  # keyboard only: type, then Enter submits the form
    field.send_keys(Keys.ENTER)
    wait(browser, css("#whoami"))
    wait(browser, css("#live.on"))


def shoot(browser: WebDriver, name: str) -> list[str]:
    taken = []
    for label, size in (("laptop", LAPTOP), ("tablet", TABLET)):
        browser.set_window_size(*size)
        path = artefacts() / f"console-{name}-{label}.png"
        browser.save_screenshot(str(path))
        taken.append(path.name)
    browser.set_window_size(*LAPTOP)
    return taken


@pytest.fixture
async def js(nats_server) -> AsyncIterator[Any]:
    nc = await nats.connect(nats_server.url)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


async def in_browser(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


def test_a_cjk_font_is_installed_for_the_screenshots() -> None:
    """Without one, headless Chromium draws Chinese as boxes (.ci/run installs fonts-noto-cjk)."""
    fonts = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, timeout=30).stdout
    assert fonts.strip(), "no font for Chinese: install fonts-noto-cjk"


async def test_an_agent_works_a_request_from_offer_to_survey_in_chromium(nats_server, js) -> None:
    settings = common_settings(nats_server.url, config_dir=CONFIG, conversation_windows="sms=72h")
    async with running(intake_app, IntakeSettings(**settings)) as intake, \
            running(routing_app, RoutingSettings(**settings)) as routing, \
            running(metrics_app, MetricsSettings(**settings)) as metrics, \
            running(feedback_app, FeedbackSettings(**settings)) as feedback, \
            running(console_app, ConsoleSettings(**settings, routing_url=routing.base_url, metrics_url=metrics.base_url,
                                                 feedback_url=feedback.base_url)) as console, \
            routing.client() as admin, intake.client(ADAPTER_KEY) as adapter, \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events, \
            tap(nats_server.url, s.STREAM_OUTBOUND, s.OUTBOUND_ALL) as outbound:
        await js.publish("kefu.intake.web", payload(Channel.web, "F-console-quality", text=QUALITY))
        foreign = (await events.wait_for(s.REQUEST_ASSIGNED, department="quality"))[0]["request_id"]
        browser = await in_browser(lambda: chromium(size=LAPTOP, lang="zh-CN"))
        seen: dict[str, Any] = {}
        try:
            # no curl: the admin adds the agent and issues their token on the Team page, the agent signs in
            def admin_sets_up_the_agent() -> str:
                sign_in(browser, console.base_url + "/", ADMIN_TOKEN)
                browser.get(console.base_url + "/#/team")
                form = wait(browser, css("#agent-form"))
                form.find_element(By.ID, "ag-id").send_keys("a1")
                form.find_element(By.ID, "ag-name").send_keys("王芳")
                Select(form.find_element(By.ID, "ag-department")).select_by_value("business")
                form.find_element(By.ID, "ag-queues").send_keys("business.normal")
                form.find_element(By.ID, "ag-capacity").clear()
                form.find_element(By.ID, "ag-capacity").send_keys("2")
                form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
                wait(browser, css('#agents tr[data-agent="a1"]'))
                tokens = browser.find_element(By.ID, "token-form")
                tokens.find_element(By.ID, "tk-subject").send_keys("a1")
                tokens.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
                token = wait(browser, css("#issued-token")).get_attribute("value")
                browser.find_element(By.ID, "signout").click()
                sign_in(browser, console.base_url + "/", token)
                return str(token)
            token = await in_browser(admin_sets_up_the_agent)
            seen["profile"] = (await admin.get("/v1/agents/a1")).json()
            seen["empty"] = await in_browser(lambda: wait(browser, css("p#work")).text)
            seen["token_in_url"] = token in browser.current_url
            # a customer writes: the offer appears without reloading, with its countdown
            sms = {"MessageSid": "SM-console-1", "From": PHONE, "To": "+861069000000", "Body": INQUIRY}
            assert (await adapter.post("/v1/intake/sms", data=sms)).status_code == 202
            rid = (await events.wait_for(s.REQUEST_DISPATCHED, agent_id="a1"))[0]["request_id"]

            def take_offer() -> None:
                row = wait(browser, css(f'tr[data-request="{rid}"][data-state="offered"]'))
                seen["row"] = row.text
                seen["toast"] = wait(browser, text_in("#toasts .toast", rid[4:12].upper())) and \
                    browser.find_element(By.CSS_SELECTOR, "#toasts .toast:last-child").text
                row.find_element(By.CSS_SELECTOR, "button.accept").click()
                wait(browser, css("#request-title"))
                wait(browser, text_in(".facts", "处理中"))  # accepted
                browser.find_element(By.ID, "reply-text").send_keys("您好，积分在“我的”页面查看。")
                browser.find_element(By.CSS_SELECTOR, "#reply-form button[type=submit]").click()
                wait(browser, text_in("#conversation .message.out", "积分在“我的”页面查看"))
            await in_browser(take_offer)
            reply = (await outbound.wait_for("kefu.outbound.sms", kind="reply"))[0]

            # the customer answers on the same phone: the follow-up appears live in the open request
            sms2 = {"MessageSid": "SM-console-2", "From": PHONE, "To": "+861069000000", "Body": FOLLOW_UP}
            followed = await adapter.post("/v1/intake/sms", data=sms2)
            await events.wait_for(s.REQUEST_MESSAGE, request_id=rid)

            def see_follow_up_and_resolve() -> None:
                wait(browser, text_in("#conversation .message.in", "积分什么时候过期"))
                seen["conversation"] = browser.find_element(By.ID, "conversation").text
                seen["markup"] = len(browser.find_elements(By.CSS_SELECTOR, "#main img, #main b, #main script"))
                seen["title"] = browser.title
                seen["lang"] = browser.find_element(By.TAG_NAME, "html").get_attribute("lang")
                seen["shots"] = shoot(browser, "request-zh")
                # why kefu judged so: each rule and the words it found; then the agent corrects it
                browser.find_element(By.CSS_SELECTOR, "#why summary").click()
                seen["why"] = wait(browser, lambda b: b.find_element(By.ID, "why").text.count("\n") >= 2
                                   and b.find_element(By.ID, "why").text)
                Select(browser.find_element(By.ID, "correct-category")).select_by_value("complaint")
                browser.find_element(By.ID, "correct-reason").send_keys("客户在抱怨积分过期")
                browser.find_element(By.CSS_SELECTOR, "#correct-form button[type=submit]").click()
                wait(browser, text_in("#history", "corrected"))
                browser.find_element(By.ID, "resolve-text").send_keys("已告知积分查询方式和有效期。")
                browser.find_element(By.ID, "first-contact").click()
                browser.find_element(By.CSS_SELECTOR, "#resolve-form button[type=submit]").click()
                wait(browser, text_in(".facts", "已解决"))
                # an action the request no longer allows (someone else's change looks the same): 409, said and reloaded
                browser.find_element(By.ID, "pending-reason").send_keys("等客户照片")
                browser.find_element(By.CSS_SELECTOR, "#pending-form button[type=submit]").click()
                seen["conflict"] = wait(browser, lambda b: b.find_element(By.ID, "alert").is_displayed()
                                        and b.find_element(By.ID, "alert").text)
                # search by the customer's phone: the lookup answers (metrics, a moment behind the log)
                browser.get(f"{console.base_url}/#/search")
                wait(browser, css("#s-contact")).send_keys(PHONE)

                def found(b: WebDriver) -> Any:
                    hits = b.find_elements(By.CSS_SELECTOR, f'#found tr[data-request="{rid}"]')
                    if not hits:
                        b.find_element(By.CSS_SELECTOR, "#search button[type=submit]").click()
                    return hits[0] if hits else False
                seen["found"] = wait(browser, found).text
                # another department's request, typed as a URL: shown as absent
                browser.get(f"{console.base_url}/#/requests/{foreign}")
                seen["foreign"] = wait(browser, css("#not-found")).text
                seen["foreign_subject"] = QUALITY[:20] in browser.page_source
            await in_browser(see_follow_up_and_resolve)
            survey = (await outbound.wait_for("kefu.outbound.sms", kind="survey", request_id=rid))[0]
            resolved = (await events.wait_for(s.REQUEST_RESOLVED, request_id=rid))[0]
            corrected = (await events.wait_for(s.REQUEST_CORRECTED, request_id=rid))[0]
        finally:
            await in_browser(browser.quit)

    assert seen["profile"]["department"] == "business" and seen["profile"]["queues"] == ["business.normal"]
    assert seen["empty"] == "没有分配给您或由您处理的请求。" and not seen["token_in_url"]
    assert "请问会员积分怎么查询" in seen["row"] and "待接单" in seen["row"]
    assert rid[4:12].upper() in seen["toast"]
    assert reply["text"].startswith("您好，积分在") or "积分在" in reply["text"]
    assert followed.json() == {"status": "appended", "request_id": rid}
    assert HOSTILE in seen["conversation"] and "<script>" in seen["conversation"]  # the markup is shown as text
    assert seen["markup"] == 0 and seen["title"] != "pwned" and seen["lang"] == "zh-CN"
    assert resolved["first_contact"] is True and survey["request_id"] == rid
    assert "判断依据" in seen["why"] and "category:question" in seen["why"] and "请问" in seen["why"]
    assert corrected["changes"] == [{"field": "category", "old": "inquiry", "new": "complaint"}]
    assert corrected["actor"] == "a1" and corrected["reason"] == "客户在抱怨积分过期"
    assert resolved["misrouted"] is True  # a corrected request's resolution is not counted accurate
    assert seen["foreign"] == "没有这个请求，或您无权查看。" and not seen["foreign_subject"]
    assert seen["conflict"] == "此请求已被他人修改，已重新加载。请核对后再试。"
    assert rid[4:12].upper() in seen["found"] and "已解决" in seen["found"]
    assert seen["shots"] == ["console-request-zh-laptop.png", "console-request-zh-tablet.png"]


async def test_a_supervisor_sees_the_queue_change_and_an_emergency_arrive_on_top_in_chromium(nats_server, js) -> None:
    settings = common_settings(nats_server.url, config_dir=CONFIG)
    async with running(intake_app, IntakeSettings(**settings)), \
            running(routing_app, RoutingSettings(**settings)) as routing, \
            running(metrics_app, MetricsSettings(**settings)) as metrics, \
            running(console_app, ConsoleSettings(**settings, routing_url=routing.base_url, metrics_url=metrics.base_url,
                                                 feedback_url=routing.base_url)) as console, \
            routing.client() as admin, tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events:
        await admin.put("/v1/agents/b1", json={"name": "Li Lei", "department": "business", "queues": ["business.normal"],
                                               "capacity": 2, "status": "offline"})
        departments = ["customer_service", "quality", "production", "after_sales", "business", "hr", "coordination"]
        token = await staff_token(admin, "sup-1", "supervisor", departments)
        browser = await in_browser(lambda: chromium(size=LAPTOP, lang="en-GB"))
        seen: dict[str, Any] = {}
        try:
            await in_browser(sign_in, browser, console.base_url + "/", token)
            await in_browser(lambda: wait(browser, css('section[data-department="business"]')))
            await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-floor-1", text="请问会员积分怎么查询"))
            waiting = (await events.wait_for(s.REQUEST_ASSIGNED, queue="business.normal"))[0]["request_id"]

            def see_waiting() -> None:
                item = wait(browser, css(f'.queue[data-queue="business.normal"] ol.waiting li[data-request="{waiting}"]'))
                seen["waiting"] = item.text
            await in_browser(see_waiting)
            await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-floor-gas", text=GAS))
            gas = (await events.wait_for(s.REQUEST_ASSIGNED, emergency=True))[0]

            def see_emergency_and_set_status() -> None:
                item = wait(browser, css(f'#emergencies li[data-request="{gas["request_id"]}"]'))
                seen["emergency"] = item.text
                seen["first_section"] = browser.find_element(By.CSS_SELECTOR, "#main > section").get_attribute("id")
                seen["toast"] = wait(browser, text_in("#toasts .toast.emergency", "Emergency")) and \
                    browser.find_element(By.CSS_SELECTOR, "#toasts .toast.emergency").text
                seen["lang"] = browser.find_element(By.TAG_NAME, "html").get_attribute("lang")
                seen["shots"] = shoot(browser, "floor-en")
                select = browser.find_element(By.CSS_SELECTOR, 'select.status[data-agent="b1"]')
                select.send_keys("away")  # keyboard: type the option's text into the focused select
                wait(browser, text_in("#toasts .toast", "b1 is now away"))
            await in_browser(see_emergency_and_set_status)
            status = (await admin.get("/v1/agents/b1")).json()["status"]

            def transfer_from_the_request_page() -> None:
                # the waiting inquiry belongs to customer service: moved from its page, with a reason
                browser.get(f"{console.base_url}/#/requests/{waiting}")
                wait(browser, css("#transfer-form")).find_element(By.ID, "transfer-department").send_keys(
                    "customer_service")
                browser.find_element(By.ID, "transfer-reason").send_keys("store hours are customer service's")
                browser.find_element(By.CSS_SELECTOR, "#transfer-form button[type=submit]").click()
                wait(browser, text_in(".facts", "customer_service.normal"))
            await in_browser(transfer_from_the_request_page)
            moved = (await events.wait_for(s.REQUEST_CORRECTED, request_id=waiting))[0]
        finally:
            await in_browser(browser.quit)

    assert "请问会员积分怎么查询" in seen["waiting"] and "normal" in seen["waiting"]
    assert "Emergency" in seen["emergency"] and gas["priority"] == "urgent"
    assert seen["first_section"] == "emergencies" and gas["request_id"][4:12].upper() in seen["toast"]
    assert seen["lang"] == "en" and status == "away"
    assert moved["changes"] == [{"field": "department", "old": "business", "new": "customer_service"}]
    assert moved["actor"] == "sup-1" and moved["reason"] == "store hours are customer service's"
    assert seen["shots"] == ["console-floor-en-laptop.png", "console-floor-en-tablet.png"]
