"""Readiness bookkeeping: a consumer is stalled only when messages wait and it did not move."""

from shared.nats.progress import ConsumerProgress


def test_a_consumer_is_stalled_only_when_messages_wait_and_it_did_not_move() -> None:
    progress = ConsumerProgress()
    assert not progress.observe("c", position=10, waiting=5)  # first look: nothing to compare with
    assert progress.observe("c", position=10, waiting=5) and progress.stalled == {"c"}
    assert not progress.observe("c", position=12, waiting=3) and progress.moving  # it moved
    assert not progress.observe("c", position=12, waiting=0)  # idle with nothing waiting is fine
