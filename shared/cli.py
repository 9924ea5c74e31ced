"""`kefu`: one command for what an installed kefu runs.

    kefu run                  NATS (bundled, unless KEFU_NATS_URL is set) and the four services
    kefu provision            create or update the streams and buckets (admin NATS user)
    kefu intake|routing|feedback|metrics
                              one service, configured by KEFU_* environment variables
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys

SERVICES = {
    "intake": ("services.intake.app", "services.intake.settings", "IntakeSettings"),
    "routing": ("services.routing.app", "services.routing.settings", "RoutingSettings"),
    "feedback": ("services.feedback.app", "services.feedback.settings", "FeedbackSettings"),
    "metrics": ("services.metrics.app", "services.metrics.settings", "MetricsSettings"),
}


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="kefu", description="kefu: customer-service requests on NATS.",
                                  epilog="Settings come from KEFU_* environment variables (docs/operations.md).")
    commands = cli.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", help="local development: bundled NATS and the four services, in the foreground")
    commands.add_parser("provision", help="create or update kefu's streams and buckets (run with the admin user)")
    for name in SERVICES:
        commands.add_parser(name, help=f"run the {name} service")
    return cli


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "run":
        from devtools import run

        return run.main()
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
