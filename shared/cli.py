"""`kefu`: one command for what an installed kefu runs.

    kefu run                  NATS (bundled, unless KEFU_NATS_URL is set), the four services and the console
    kefu provision            create or update the streams and buckets (admin NATS user)
    kefu config check [DIR]   validate every configuration file (KEFU_CONFIG_DIR by default): one
                              line per mistake, with file and line; exit 1 if there is any
    kefu rejected show REF    a rejected payload's kept bytes (stdout) and why (stderr); REF is the
                              rej_… id a rejection answered with
    kefu rejected replay REF  publish it to intake again (after fixing a parser or the config)
    kefu survey link REQUEST  the survey link(s) the customer of a request got
    kefu dlq list [-n N]      the newest dead letters: consumer, reason, the original's place
                              (shared/ops.py says where these commands reach kefu)
    kefu intake|routing|feedback|metrics|console|gateway
                              one service, configured by KEFU_* environment variables
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from pathlib import Path

SERVICES = {
    "intake": ("services.intake.app", "services.intake.settings", "IntakeSettings"),
    "routing": ("services.routing.app", "services.routing.settings", "RoutingSettings"),
    "feedback": ("services.feedback.app", "services.feedback.settings", "FeedbackSettings"),
    "metrics": ("services.metrics.app", "services.metrics.settings", "MetricsSettings"),
    "console": ("services.console.app", "services.console.settings", "ConsoleSettings"),
    "gateway": ("services.gateway.app", "services.gateway.settings", "GatewaySettings"),
}


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="kefu", description="kefu: customer-service requests on NATS.",
                                  epilog="Settings come from KEFU_* environment variables (docs/operations.md).")
    commands = cli.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", help="local development: bundled NATS, the four services and the console, in the foreground")
    commands.add_parser("provision", help="create or update kefu's streams and buckets (run with the admin user)")
    config = commands.add_parser("config", help="the configuration files").add_subparsers(dest="action", required=True)
    check = config.add_parser("check", help="validate every configuration file; exit 1 on any mistake (for CI)")
    check.add_argument("dir", nargs="?", help="the configuration directory (default: KEFU_CONFIG_DIR, else kefu's own)")
    for name in SERVICES:
        commands.add_parser(name, help=f"run the {name} service")
    rejected = commands.add_parser("rejected", help="payloads intake could not understand").add_subparsers(
        dest="action", required=True)
    for action, text in (("show", "the kept raw bytes (stdout) and the reason (stderr)"),
                         ("replay", "publish the payload to intake again")):
        rejected.add_parser(action, help=text).add_argument("ref", help="the rej_… id (or the stream sequence)")
    survey = commands.add_parser("survey", help="surveys").add_subparsers(dest="action", required=True)
    survey.add_parser("link", help="the link(s) a request's customer got").add_argument("request_id")
    dlq = commands.add_parser("dlq", help="dead letters").add_subparsers(dest="action", required=True)
    dlq.add_parser("list", help="the newest dead letters").add_argument("-n", "--limit", type=int, default=20)
    return cli


def config_problems(config_dir: Path) -> list[str]:
    """Every mistake in the configuration every service reads, one line each (`file:line: field:
    what`); empty when all of it is valid. What `make run` checks before it starts anything."""
    from services.feedback.domain.rules import FeedbackConfig
    from services.routing.domain.messages import Templates
    from services.routing.domain.rules import RoutingConfig
    from shared.config import ConfigError, load_yaml_model

    problems: list[str] = []
    checks = (lambda: RoutingConfig.load(config_dir),
              lambda: load_yaml_model(config_dir / "messages.yaml", Templates),
              lambda: load_yaml_model(config_dir / "feedback.yaml", FeedbackConfig))
    for check in checks:
        try:
            check()
        except ConfigError as exc:
            problems += str(exc).splitlines()
    return problems


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "run":
        from devtools import run

        return run.main()
    if args.command == "config":
        from shared.settings import KefuSettings

        directory = Path(args.dir) if args.dir else KefuSettings().config_dir
        problems = config_problems(directory)
        for problem in problems:
            print(problem, file=sys.stderr)
        if not problems:
            print(f"{directory}: configuration valid")
        return 1 if problems else 0
    if args.command in ("rejected", "survey", "dlq"):
        from shared import ops

        actions = {("rejected", "show"): lambda: ops.rejected_show(args.ref),
                   ("rejected", "replay"): lambda: ops.rejected_replay(args.ref),
                   ("survey", "link"): lambda: ops.survey_link(args.request_id),
                   ("dlq", "list"): lambda: ops.dlq_list(args.limit)}
        try:
            actions[(args.command, args.action)]()
        except ops.OpsError as exc:
            print(f"kefu {args.command} {args.action}: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "provision":
        from devtools import provision

        return asyncio.run(provision.main())
    app_module, settings_module, settings_class = SERVICES[args.command]
    from shared.runtime import run_service

    settings = getattr(importlib.import_module(settings_module), settings_class)()
    run_service(settings, importlib.import_module(app_module).create_app)
    return 0


if __name__ == "__main__":
    sys.exit(main())
