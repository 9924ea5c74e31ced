"""`python -m services.intake`"""

from shared.runtime import run_service

from .app import create_app
from .settings import IntakeSettings

if __name__ == "__main__":
    run_service(IntakeSettings(), create_app)
