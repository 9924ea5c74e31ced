"""A JetStream KV bucket of one pydantic model, with revision-checked writes."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Generic, TypeVar

import nats.js.errors
from nats.js.kv import KeyValue
from pydantic import BaseModel

T = TypeVar("T", bound=BaseModel)


class Conflict(Exception):
    """Another writer changed the key first."""


class ModelBucket(Generic[T]):
    def __init__(self, kv: KeyValue, model: type[T]) -> None:
        self.kv = kv
        self.model = model

    async def get(self, key: str) -> tuple[T, int] | None:
        try:
            entry = await self.kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            return None
        return self.model.model_validate_json(entry.value), entry.revision

    async def create(self, key: str, value: T) -> bool:
        """False when the key exists already."""
        try:
            await self.kv.create(key, value.model_dump_json().encode())
            return True
        except nats.js.errors.KeyWrongLastSequenceError:
            return False

    async def update(self, key: str, value: T, revision: int) -> int:
        """Write if the key is still at `revision`; returns the new revision."""
        try:
            return await self.kv.update(key, value.model_dump_json().encode(), last=revision)
        except nats.js.errors.KeyWrongLastSequenceError as exc:
            raise Conflict(key) from exc

    async def change(self, key: str, change: Callable[[T], T | None], attempts: int = 20) -> T | None:
        """Read, change, write with a revision check, retrying on conflicts. `change` returning
        None (or the value unchanged) writes nothing. Returns the value as stored, None if absent."""
        for _ in range(attempts):
            found = await self.get(key)
            if found is None:
                return None
            value, revision = found
            changed = change(value)
            if changed is None or changed == value:
                return value
            try:
                await self.update(key, changed, revision)
                return changed
            except Conflict:
                continue
        raise Conflict(key)

    async def keys(self) -> list[str]:
        try:
            return await self.kv.keys()
        except nats.js.errors.NoKeysError:
            return []

    async def delete(self, key: str) -> None:
        with contextlib.suppress(nats.js.errors.KeyNotFoundError):
            await self.kv.delete(key)
