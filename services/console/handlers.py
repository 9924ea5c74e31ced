"""What the console publishes on NATS: nothing. It reads the event log (the live stream) and
routing's records (who may see a request), and every change a page makes goes through the API of
the service that owns it. Declared like every service's, so that tests and AsyncAPI agree."""

from __future__ import annotations

from shared.nats.publish import Publishes

PUBLISHES: list[Publishes] = []
