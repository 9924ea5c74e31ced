"""`python -m services.routing`"""

from shared.runtime import run_service

from .app import create_app
from .settings import RoutingSettings

if __name__ == "__main__":
    run_service(RoutingSettings(), create_app)
