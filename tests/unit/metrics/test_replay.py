from __future__ import annotations

import json

from services.metrics.domain.indicators import Projection, decode_event
from services.metrics.handlers import Replay
from shared.contract import subjects as s
from shared.nats.logreader import LogEntry


def test_an_event_that_is_not_a_json_object_is_skipped_and_the_replay_goes_on() -> None:
    replay = Replay(Projection(departments=("customer_service",)))
    received = {"request_id": "req_a", "channel": "sms", "occurred_at": "2026-12-01T01:00:00+00:00",
                "received_at": "2026-12-01T01:00:00+00:00"}
    entries = [LogEntry(1, s.REQUEST_RECEIVED, b"not json"), LogEntry(2, s.REQUEST_RECEIVED, b"\xff\xfe"),
               LogEntry(3, s.REQUEST_RECEIVED, b"[1, 2]"), LogEntry(4, s.REQUEST_RECEIVED, b'"text"'),
               LogEntry(5, s.REQUEST_RECEIVED, json.dumps(received).encode())]
    applied = [replay.apply(entry) for entry in entries]
    assert applied == [None, None, None, None, received]
    assert replay.seq == 5
    assert replay.projection.received["sms"] == 1


def test_decode_event_takes_json_objects_only() -> None:
    assert decode_event(b'{"a": 1}') == {"a": 1}
    for data in (b"", b"{", b"\xff", b"[]", b"null", b"3", b'"x"'):
        assert decode_event(data) is None, data
