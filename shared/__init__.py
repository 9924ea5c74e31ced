"""kefu's shared contract: models, subjects, settings, configuration loading, NATS plumbing.

Import the modules (`from shared import models, subjects`); each declares what it offers.
"""

from . import bus, config, enums, logs, models, runtime, settings, subjects

__all__ = ["bus", "config", "enums", "logs", "models", "runtime", "settings", "subjects"]
