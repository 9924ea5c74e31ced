"""The committed AsyncAPI/OpenAPI documents are exactly what the code generates (`make docs`)."""

from __future__ import annotations

from pathlib import Path

from devtools.gen_docs import OUT, documents

ROOT = Path(__file__).parents[2]


def test_committed_contract_documents_match_the_code() -> None:
    stale = [name for name, text in documents().items() if not (OUT / name).exists()
             or (OUT / name).read_text(encoding="utf-8") != text]
    assert stale == [], f"run `make docs` and commit: {stale} differ from the code"


def test_contract_documents_name_every_public_path_and_subject() -> None:
    docs = documents()
    asyncapi = docs["asyncapi.json"]
    for subject in ("kefu.intake.>", "kefu.events.request.received", "kefu.events.request.assigned",
                    "kefu.events.request.rejected", "kefu.outbound.wechat"):
        assert f'"{subject}"' in asyncapi
    assert '"/v1/intake/{channel}"' in docs["openapi-intake.json"]
    assert '"/v1/customers/{customer_id}"' in docs["openapi-intake.json"]
    assert '"/v1/requests/{request_id}"' in docs["openapi-routing.json"]
    assert all('"/healthz"' in docs[f"openapi-{n}.json"] for n in ("intake", "routing", "feedback", "metrics", "console", "gateway"))
    assert Path(OUT).name == "api"


def test_documents_declare_servers_licence_security_and_only_defined_nats_bindings() -> None:
    import json

    asyncapi = json.loads((ROOT / "docs" / "api" / "asyncapi.json").read_text())
    assert list(asyncapi["servers"]) == ["development"]
    assert all("bindings" not in channel for channel in asyncapi["channels"].values())  # the NATS binding has none
    for operation in asyncapi["operations"].values():
        for binding in (operation.get("bindings") or {}).values():
            assert set(binding) <= {"queue", "bindingVersion"} and binding["bindingVersion"] == "0.1.0"
    for path in sorted((ROOT / "docs" / "api").glob("openapi-*.json")):
        doc = json.loads(path.read_text())
        assert doc["servers"] and doc["info"]["license"]["identifier"] == "Apache-2.0", path.name
        assert all("security" in op for ops in doc["paths"].values() for op in ops.values()), path.name


def test_each_channels_published_payload_schema_accepts_what_its_adapters_send() -> None:
    """docs/api/intake-payloads.json, checked with an independent validator (jsonschema) against
    the sample payloads of each JSON channel, and named in intake's OpenAPI request body."""
    import json

    import jsonschema

    from devtools.payloads import payload
    from shared.contract.enums import Channel

    published = json.loads((ROOT / "docs" / "api" / "intake-payloads.json").read_text())["channels"]
    assert set(published) == {c.value for c in Channel}
    for channel in (Channel.phone, Channel.web, Channel.app, Channel.walkin):
        spec = published[channel.value]
        assert spec["media_type"] == "application/json"
        jsonschema.validate(json.loads(payload(channel, "S-1")), spec["schema"])
    with __import__("pytest").raises(jsonschema.ValidationError):
        jsonschema.validate({"text": "no event_id"}, published["app"]["schema"])
    body = json.loads((ROOT / "docs" / "api" / "openapi-intake.json").read_text())[
        "paths"]["/v1/intake/{channel}"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "application/x-www-form-urlencoded", "message/rfc822", "text/xml"}
    titles = {s["title"].split(":")[0] for s in body["application/json"]["schema"]["oneOf"]}
    assert titles == {"phone", "web", "app", "walkin"}


def test_every_event_the_code_names_is_in_the_asyncapi_document() -> None:
    """An event subject anywhere in services/ or shared/ (a publish, a filter, a constant) that the
    AsyncAPI document does not describe fails here: nothing is published undocumented."""
    import ast
    import json
    import re

    channels = json.loads((ROOT / "docs" / "api" / "asyncapi.json").read_text())["channels"]
    documented = {channel["address"] for channel in channels.values()}
    named = set()
    for path in [*(ROOT / "services").rglob("*.py"), *(ROOT / "shared").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and re.fullmatch(r"kefu\.events\.[a-z_]+\.[a-z_]+", node.value):
                named.add(node.value)
    assert len(named) >= 20
    assert named - documented == set()
