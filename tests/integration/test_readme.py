"""The README's adapter snippets, run as they are written (only the addresses are changed)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from shared.contract import subjects as s
from tests.integration.conftest import pipeline
from tests.support.services import ADAPTER_KEY

pytestmark = pytest.mark.integration
README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")


def block(language: str, containing: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)
    return next(b for b in blocks if containing in b)


async def run(*argv: str, env: dict[str, str] | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return out.decode()


async def test_readme_nats_snippet_makes_an_assigned_request(start, events, nats_server) -> None:
    code = block("python", "kefu.intake.phone").replace("nats://127.0.0.1:4222", nats_server.url)
    async with pipeline(start):
        out = await run(sys.executable, "-c", code)
        received = (await events.wait_for(s.REQUEST_RECEIVED))[0]
        assigned = (await events.wait_for(s.REQUEST_ASSIGNED))[0]
    assert out.startswith("stored in KEFU_INTAKE seq 1")
    assert received["source_id"] == "CA-20261124-0001"
    assert assigned["emergency"] is True


async def test_readme_curl_line_posts_an_sms(start, events) -> None:
    async with pipeline(start) as (intake, _):
        command = block("sh", "MessageSid=SM8f2a71").replace("http://127.0.0.1:8081", intake.base_url)
        out = await run("bash", "-c", command, env={**os.environ, "KEFU_ADAPTER_KEY": ADAPTER_KEY})
        received = (await events.wait_for(s.REQUEST_RECEIVED))[0]
    assert '"status":"accepted"' in out
    assert received["channel"] == "sms" and received["body"] == "我的宽带断了三天了，我要投诉"
