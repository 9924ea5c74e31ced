"""Agents' corrections, end to end with the real services: an agent re-categorises and re-prioritises
a request and a supervisor moves another to a different department; each is a
`kefu.events.request.corrected` with old and new values; metrics counts them and takes them out of
processing accuracy; `kefu corrections export` (the command as shipped) writes the corrected
request as a labelled row with the customer's personal data masked, and `kefu policy evaluate`
measures the rules on it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from devtools.payloads import payload
from shared.contract import subjects as s
from shared.contract.enums import Channel
from tests.support.services import put_agent, staff_token, tap, wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[2]
# judged an inquiry (a question, no complaint word); really a complaint about a billing error
TEXT = "我是王小明，请问我的账户13800138000为什么这个月收了两份月费，卡号6222 0212 3456 7890"


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` with these labels."""
    return sum(sample_.value for family in text_string_to_metric_families(text) for sample_ in family.samples
               if sample_.name == name and all(sample_.labels.get(k) == v for k, v in labels.items()))


async def test_corrections_are_events_metrics_and_masked_labelled_rows(nats_server, start, js, tmp_path) -> None:
    async with start["intake"](), start["routing"]() as routing, start["metrics"]() as metrics, \
            routing.client() as admin, metrics.client() as scrape, \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events:
        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-corr-1", text=TEXT))
        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-corr-2", text="请问营业厅周末几点开门",
                                                    contact="+8613900002222"))
        assigned = {a["request_id"]: a for a in await events.wait_for(s.REQUEST_ASSIGNED, count=2)}
        first = next(a for a in assigned.values() if a["category"] != "complaint" and "收了两份" in json.dumps(
            events.of(s.REQUEST_RECEIVED, request_id=a["request_id"]), ensure_ascii=False))
        second = next(a for a in assigned.values() if a is not first)
        department = first["department"]
        await put_agent(admin, "a1", department, queues=[first["queue"]], status="offline")
        agent = routing.client(await staff_token(admin, "a1"))
        other = "customer_service" if department != "customer_service" else "business"
        await put_agent(admin, "z9", other, status="offline")
        stranger = routing.client(await staff_token(admin, "z9"))
        supervisor = routing.client(await staff_token(admin, "s1", role="supervisor",
                                                      departments=[second["department"], "customer_service"]))
        url = f"/v1/requests/{first['request_id']}"

        # an agent of the department corrects category and priority, with a reason
        corrected = await agent.post(f"{url}/correct", json={
            "category": "complaint", "priority": "important", "reason": "重复扣费，是投诉"})
        nothing = await agent.post(f"{url}/correct", json={"category": "complaint", "reason": "again"})
        empty = await agent.post(f"{url}/correct", json={"reason": "no field"})
        unknown = await agent.post(f"{url}/correct", json={"category": "praise", "reason": "x"})
        foreign = await stranger.post(f"{url}/correct", json={"category": "help", "reason": "not mine"})
        # a supervisor moves the other request to another department: a department correction
        moved = await supervisor.post(f"/v1/requests/{second['request_id']}/transfer",
                                      json={"department": "customer_service", "reason": "门店问题归客服"})
        corrections = await events.wait_for(s.REQUEST_CORRECTED, count=2)
        record = (await agent.get(url)).json()

        async def counted() -> str | None:
            text = (await scrape.get("/metrics")).text
            return text if sample(text, "kefu_judgement_corrections_total", field="department") else None
        exposition = await wait_until(counted, what="corrections counted by metrics")

    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["priority"] == "important" and corrected.json()["queue"] == f"{department}.important"
    assert nothing.status_code == 409 and nothing.json()["error"] == "invalid_transition"
    assert empty.status_code == 422 and unknown.status_code == 422
    assert foreign.status_code in (403, 404)
    assert moved.status_code == 200, moved.text
    by_request = {c["request_id"]: c for c in corrections}
    mine = by_request[first["request_id"]]
    assert mine["actor"] == "a1" and mine["reason"] == "重复扣费，是投诉" and mine["queue"] == f"{department}.important"
    assert {(c["field"], c["old"], c["new"]) for c in mine["changes"]} == {
        ("category", first["category"], "complaint"), ("priority", first["priority"], "important")}
    assert by_request[second["request_id"]]["changes"] == [
        {"field": "department", "old": second["department"], "new": "customer_service"}]
    assert record["assignment"]["category"] == "complaint" and record["priority"] == "important"
    assert record["history"][-1]["action"] == "corrected"
    # the explanation rides on the decision: each rule and the words it found
    assert first["evidence"] and all(isinstance(v, str) and v for v in first["evidence"].values())
    assert sample(exposition, "kefu_judgement_corrections_total", field="category", department=department) == 1
    assert sample(exposition, "kefu_judgement_corrections_total", field="priority", department=department) == 1
    assert sample(exposition, "kefu_judgement_corrections_total", field="department",
                  department=second["department"]) == 1

    now = datetime.now(UTC)
    env = {"PATH": "/usr/bin:/bin", "KEFU_NATS_URL": nats_server.url}
    kefu = str(Path(sys.executable).parent / "kefu")
    exported = await asyncio.to_thread(subprocess.run, [
        kefu, "corrections", "export", "--from", (now - timedelta(hours=1)).isoformat(),
        "--to", (now + timedelta(hours=1)).isoformat(), "-o", str(tmp_path / "corrections.jsonl")],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    rows = [json.loads(line) for line in (tmp_path / "corrections.jsonl").read_text(encoding="utf-8").splitlines()]
    # one row: the department move alone is the departments table's, not the words' judgement
    assert len(rows) == 1 and "1 corrected request" in exported.stderr
    row = rows[0]
    assert (row["category"], row["priority"], row["source"], row["channel"]) == ("complaint", "important", "correction", "sms")
    assert row["corrected"]["category"] == {"judged": first["category"], "label": "complaint"}
    assert "13800138000" not in row["text"] and "6222" not in row["text"]
    assert "收了两份月费" in row["text"] and "<phone>" in row["text"] and "<number>" in row["text"]

    evaluated = await asyncio.to_thread(subprocess.run, [
        kefu, "policy", "evaluate", "--config", str(ROOT / "config"), str(tmp_path / "corrections.jsonl"), "--misses"],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert evaluated.stdout.startswith("1 rows: category")


async def test_a_held_request_corrected_to_another_priority_is_listed_under_its_new_queue(nats_server, start, js) -> None:
    """The probe: a request an agent held, re-prioritised, was in neither queue's listing (the
    agent's index of held requests kept the old queue)."""
    async with start["intake"](), start["routing"]() as routing, routing.client() as admin, \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events:
        await put_agent(admin, "h1")
        agent = routing.client(await staff_token(admin, "h1"))
        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-held-1", text="请问会员积分怎么查询"))
        rid = (await events.wait_for(s.REQUEST_DISPATCHED, agent_id="h1"))[0]["request_id"]
        assert (await agent.post(f"/v1/requests/{rid}/accept", json={})).status_code == 200
        fixed = await agent.post(f"/v1/requests/{rid}/correct", json={"priority": "important", "reason": "VIP 投诉前兆"})
        new_queue = (await admin.get("/v1/queues/business.important")).json()
        old_queue = (await admin.get("/v1/queues/business.normal")).json()
    assert fixed.status_code == 200 and fixed.json()["queue"] == "business.important"
    assert [h["request_id"] for h in new_queue["assigned"]] == [rid] and new_queue["assigned"][0]["agent_id"] == "h1"
    assert all(h["request_id"] != rid for h in old_queue["assigned"])
