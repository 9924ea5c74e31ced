"""Whether each consumer of a service moves: the readiness that `/readyz` reports beside the NATS
connection. A consumer is stalled when the stream holds messages it has not reached and its
position did not move between two checks (a missing permission on flow-control replies, a fetch
loop that died, handlers that never finish). Pure bookkeeping: the caller reads the positions."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ConsumerProgress:
    positions: dict[str, int] = field(default_factory=dict)
    stalled: set[str] = field(default_factory=set)

    def observe(self, consumer: str, *, position: int, waiting: int) -> bool:
        """Record one check of `consumer`: `position` is the last stream sequence it reached,
        `waiting` how many messages the stream holds beyond it. Returns whether it is stalled."""
        previous = self.positions.get(consumer)
        self.positions[consumer] = position
        stuck = waiting > 0 and previous is not None and position <= previous
        if stuck:
            self.stalled.add(consumer)
        else:
            self.stalled.discard(consumer)
        return stuck

    @property
    def moving(self) -> bool:
        return not self.stalled
