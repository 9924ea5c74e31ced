"""`python -m services.metrics`"""

from shared.runtime import run_service

from .app import create_app
from .settings import MetricsSettings

if __name__ == "__main__":
    run_service(MetricsSettings(), create_app)
