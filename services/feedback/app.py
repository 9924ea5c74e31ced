"""Composition root of feedback (first version: the service shape; surveys come with the feedback issue)."""

from __future__ import annotations

from fastapi import FastAPI

from shared.runtime import base_app, make_runtime

from .settings import FeedbackSettings

DESCRIPTION = "Sends results and satisfaction surveys back through the customer's channel; reopens on dissatisfaction."


def create_app(settings: FeedbackSettings | None = None) -> FastAPI:
    settings = settings or FeedbackSettings()
    runtime = make_runtime(settings, consumer="feedback")
    return base_app(runtime, title="kefu feedback", description=DESCRIPTION)
