"""The OpenAPI document: FastAPI's, with kefu's error body, servers, licence and explicit security."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI

from ..settings import KefuSettings
from .errors import ErrorBody

SERVICE_PORTS = {"intake": 8081, "routing": 8082, "feedback": 8083, "metrics": 8084, "console": 8085, "gateway": 8086}


def document(app: FastAPI, settings: KefuSettings) -> dict[str, Any]:
    """FastAPI's document, with kefu's error body everywhere: 422 is `{"error", "detail"}` (not
    FastAPI's list), and operations that need a bearer token document 401 and 403, those with a
    body 400 (a body that is not valid JSON or UTF-8)."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    port = settings.http_port or SERVICE_PORTS.get(settings.service_name, 8080)
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                      servers=[{"url": f"http://127.0.0.1:{port}", "description": "make run (local development)"}],
                      license_info={"name": "Apache-2.0", "identifier": "Apache-2.0"})
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["ErrorBody"] = ErrorBody.model_json_schema()
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
    for operations in doc.get("paths", {}).values():
        for op in operations.values():
            op.setdefault("security", [])  # public: said explicitly, not left to a global default
            responses = op.setdefault("responses", {})
            wanted = {"422": "invalid request"}
            if op.get("security"):
                wanted |= {"401": "missing, invalid or expired credentials", "403": "the caller's role may not"}
            if "requestBody" in op:
                wanted["400"] = "the body is not valid JSON / UTF-8"
            for code, description in wanted.items():
                if code == "422" and code not in responses and not op.get("parameters") and "requestBody" not in op:
                    continue  # nothing to validate
                current = responses.get(code, {})
                if "HTTPValidationError" not in json.dumps(current) and current.get("content"):
                    continue  # documented by the endpoint itself
                responses[code] = {"description": current.get("description") or description} | error
    if '"KefuSignature"' in json.dumps(doc.get("paths", {})):
        doc["components"].setdefault("securitySchemes", {})["KefuSignature"] = {
            "type": "apiKey", "in": "header", "name": "Kefu-Signature",
            "description": "`t=<unix seconds>,v1=<hex HMAC-SHA256 of \"t.body\">` with the adapter's key "
                           "(docs/channels.md); each signature is accepted once, for 5 minutes."}
    app.openapi_schema = doc
    return doc
