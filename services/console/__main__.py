"""`python -m services.console`"""

from shared.runtime import run_service

from .app import create_app
from .settings import ConsoleSettings

if __name__ == "__main__":
    run_service(ConsoleSettings(), create_app)
