"""`python -m services.feedback`"""

from shared.runtime import run_service

from .app import create_app
from .settings import FeedbackSettings

if __name__ == "__main__":
    run_service(FeedbackSettings(), create_app)
