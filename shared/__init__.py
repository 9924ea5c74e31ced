"""kefu's shared contract: models, subjects, settings, configuration loading, NATS plumbing.

Import the modules (`from shared import models, subjects`); each declares what it offers.
"""

from . import bus, calendar, config, enums, logs, models, outbox, privacy, runtime, settings, subjects, timers

__all__ = [
    "bus", "calendar", "config", "enums", "logs", "models", "outbox", "privacy", "runtime", "settings",
    "subjects", "timers",
]
