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
    kefu policy dry-run --config DIR --from DATE --to DATE [--json F] [--csv F]
                              the period's recorded requests judged and timed under the
                              configuration in DIR: what would change (docs/routing.md#dry-run)
    kefu policy evaluate --config DIR FILE...
                              category and priority accuracy, emergency recall and precision of
                              the rules in DIR on labelled rows (JSON lines: the tuning set, or
                              an export of corrections); --misses lists the rows judged wrong
    kefu corrections export --from DATE --to DATE [-o FILE]
                              the period's requests agents corrected, as labelled rows with
                              personal data masked (docs/routing.md#corrections)
                              (shared/ops.py says where these commands reach kefu)
    kefu intake|routing|feedback|metrics|console|gateway
                              one service, configured by KEFU_* environment variables
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from datetime import datetime
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
    policy = commands.add_parser("policy", help="candidate configurations").add_subparsers(dest="action", required=True)
    dry = policy.add_parser("dry-run", help="replay a period's requests through a candidate configuration")
    dry.add_argument("--config", required=True, help="the candidate configuration directory")
    dry.add_argument("--from", dest="start", required=True, help="first day (YYYY-MM-DD, local time) or ISO instant")
    dry.add_argument("--to", dest="end", required=True, help="day after the last (YYYY-MM-DD) or ISO instant")
    dry.add_argument("--json", help="also write the report as JSON to this file")
    dry.add_argument("--csv", help="also write the report as CSV to this file")
    evaluate = policy.add_parser("evaluate", help="measure a configuration's rules on labelled rows")
    evaluate.add_argument("--config", required=True, help="the configuration directory whose rules.yaml to measure")
    evaluate.add_argument("files", nargs="+", help="labelled rows, one JSON object per line")
    evaluate.add_argument("--misses", action="store_true", help="also list each row judged wrong")
    corrections = commands.add_parser("corrections", help="agents' corrections of routing's judgement").add_subparsers(
        dest="action", required=True)
    export = corrections.add_parser("export", help="corrected requests as labelled rows (personal data masked)")
    export.add_argument("--from", dest="start", required=True, help="first day (YYYY-MM-DD, local time) or ISO instant")
    export.add_argument("--to", dest="end", required=True, help="day after the last (YYYY-MM-DD) or ISO instant")
    export.add_argument("-o", "--output", help="write to this file instead of standard output")
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


def instant(text: str) -> datetime:
    """A day (local midnight, KEFU_TIMEZONE) or an ISO 8601 instant."""
    from zoneinfo import ZoneInfo

    from shared.settings import KefuSettings

    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(KefuSettings().timezone))


def dry_run_command(args: argparse.Namespace) -> int:
    from services.routing import dryrun
    from shared.config import ConfigError

    try:
        dryrun.run(Path(args.config), instant(args.start), instant(args.end),
                   json_path=Path(args.json) if args.json else None, csv_path=Path(args.csv) if args.csv else None)
    except ConfigError as exc:
        print(f"kefu policy dry-run: the candidate configuration is not valid:\n{exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"kefu policy dry-run: {exc}", file=sys.stderr)
        return 2
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    import json

    from pydantic import ValidationError

    from services.routing.domain.evaluate import Labelled, score
    from services.routing.domain.rules import RoutingConfig
    from shared.config import ConfigError

    try:
        rules = RoutingConfig.load(Path(args.config)).rules
    except ConfigError as exc:
        print(f"kefu policy evaluate: the configuration is not valid:\n{exc}", file=sys.stderr)
        return 1
    rows: list[Labelled] = []
    for name in args.files:
        for n, line in enumerate(Path(name).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(Labelled.model_validate(json.loads(line)))
            except (ValueError, ValidationError) as exc:
                print(f"kefu policy evaluate: {name}:{n}: not a labelled row: {exc}", file=sys.stderr)
                return 2
    result = score(rows, rules)
    print(result.summary())
    print("category accuracy by " + ", ".join(f"{k} {v:.3f}" for k, v in result.category_accuracy_by.items()))
    print(f"category confusion (expected->judged): {result.confusion or 'none'}")
    if args.misses:
        text = {row.id: row.text for row in rows}
        for miss in result.misses:
            print(f"  {miss.id} {miss.field}: {miss.expected} -> {miss.judged}  {text[miss.id][:80]!r}")
    return 0


def corrections_command(args: argparse.Namespace) -> int:
    from services.routing import corrections

    try:
        count = corrections.export(instant(args.start), instant(args.end),
                                   path=Path(args.output) if args.output else None)
    except ValueError as exc:
        print(f"kefu corrections export: {exc}", file=sys.stderr)
        return 2
    print(f"kefu corrections export: {count} corrected request(s)", file=sys.stderr)
    return 0


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
    if args.command == "policy":
        return evaluate_command(args) if args.action == "evaluate" else dry_run_command(args)
    if args.command == "corrections":
        return corrections_command(args)
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
