"""schemathesis against every service's OpenAPI document, over real sockets, with NATS behind.

Each service is generated-for from its own `/openapi.json` (the document in docs/api/) with every
check schemathesis has — no 5xx, no undocumented status or content type, responses matching their
schemas, requests without credentials refused — except `positive_data_acceptance`: kefu checks
bodies against configuration and state no schema can express (unknown departments and agents,
an admin's accept that names no agent), and answers those 422 as documented.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from services.feedback.app import create_app as feedback_app
from services.feedback.settings import FeedbackSettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.metrics.app import create_app as metrics_app
from services.metrics.settings import MetricsSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from tests.support.services import ADMIN_TOKEN, common_settings, running

pytestmark = pytest.mark.integration
CONFIG = Path(__file__).parents[2] / "config"
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
SERVICES = {"intake": (intake_app, IntakeSettings), "routing": (routing_app, RoutingSettings),
            "feedback": (feedback_app, FeedbackSettings), "metrics": (metrics_app, MetricsSettings)}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", list(SERVICES))
async def test_generated_requests_get_no_server_error_and_only_documented_answers(name, nats_server, tmp_path) -> None:
    create_app, settings_type = SERVICES[name]
    settings = settings_type(**common_settings(nats_server.url, config_dir=CONFIG, rate_limit_per_second=10_000))
    async with running(create_app, settings) as service:
        proc = await asyncio.create_subprocess_exec(
            str(SCHEMATHESIS), "run", f"{service.base_url}/openapi.json",
            "--checks", "all", "--exclude-checks", "positive_data_acceptance",
            "-H", f"Authorization: Bearer {ADMIN_TOKEN}",
            "--max-examples", "40", "--seed", "20261124", "--workers", "1",
            "--phases", "examples,coverage,fuzzing", "--suppress-health-check", "all",
            "--generation-database", "none", "--warnings", "off", "--no-color",
            "--report", "junit", "--report-dir", str(tmp_path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path)
        output = (await proc.communicate())[0].decode(errors="replace")
    assert proc.returncode == 0, output[-8000:]
    assert "API Operations:" in output and " failures " not in output
