"""`python -m devtools.provision`: create or update kefu's streams and buckets (idempotent).

Deployments run this once per release with an admin NATS user (a compose one-off service, a
Kubernetes Job) and start the services with KEFU_PROVISION=false, so that the services' own NATS
users need no stream-admin rights.
"""

from __future__ import annotations

import asyncio
import sys

import nats

from shared.nats.topology import connect_kwargs, provision, stream_configs
from shared.settings import KefuSettings


async def main() -> int:
    settings = KefuSettings(service_name="provision")
    nc = await nats.connect(**connect_kwargs(settings))
    try:
        await provision(nc.jetstream(), settings)
    finally:
        await nc.close()
    print(f"provisioned {len(stream_configs(settings))} streams and the buckets on {settings.nats_url}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
