"""`python -m services.gateway`"""

from shared.runtime import run_service

from .app import create_app
from .settings import GatewaySettings

if __name__ == "__main__":
    run_service(GatewaySettings(), create_app)
