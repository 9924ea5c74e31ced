"""Intake's state in JetStream KV: the customer directory, its contact index, seen source ids."""

from __future__ import annotations

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from shared.contract import subjects as s
from shared.contract.enums import Channel
from shared.nats.kv import ModelBucket
from shared.nats.publish import together

from .domain.canonical import CustomerRecord, source_key
from .domain.contacts import contact_key
from .domain.identity import LOOKUP_KINDS
from .domain.model import Contact
from .domain.threading import SenderThreads


class Conflict(Exception):
    """A concurrent update won; the caller may retry."""


class IntakeStore:
    def __init__(self, customers: KeyValue, contacts: KeyValue, sources: KeyValue, open_surveys: KeyValue,
                 signatures: KeyValue, threads: KeyValue) -> None:
        self.customers = customers
        self.contacts = contacts
        self.sources = sources
        self.open_surveys = open_surveys
        self.signatures = signatures
        self.threads = ModelBucket(threads, SenderThreads)

    @classmethod
    async def open(cls, js: JetStreamContext) -> IntakeStore:
        return cls(
            await js.key_value(s.BUCKET_CUSTOMERS),
            await js.key_value(s.BUCKET_CONTACTS),
            await js.key_value(s.BUCKET_INTAKE_SOURCES),
            await js.key_value(s.BUCKET_OPEN_SURVEYS),
            await js.key_value(s.BUCKET_WEBHOOK_SIGNATURES),
            await js.key_value(s.BUCKET_THREADS),
        )

    # -- conversations --------------------------------------------------------------------------
    async def sender_threads(self, sender: str | None) -> tuple[SenderThreads | None, int]:
        """A sender's recent requests and decisions, with the revision read ((None, 0): none yet)."""
        if sender is None:
            return None, 0
        return await self.threads.get(sender_entry(sender)) or (None, 0)

    async def first_use(self, signature_key: str) -> bool:
        """True the first time a signature is presented (within the bucket's 10-minute memory)."""
        try:
            await self.signatures.create(signature_key, b"")
            return True
        except nats.js.errors.KeyWrongLastSequenceError:
            return False

    # -- exactly once -------------------------------------------------------------------------
    async def seen(self, channel: Channel, source_id: str) -> str | None:
        """The request id already made from this (channel, source id), if any."""
        return await _text_of(self.sources, source_key(channel, source_id))

    async def mark(self, channel: Channel, source_id: str, request_id: str) -> None:
        try:
            await self.sources.create(source_key(channel, source_id), request_id.encode())
        except nats.js.errors.KeyWrongLastSequenceError:
            pass  # marked by a concurrent delivery of the same payload: same request id

    async def open_survey(self, kind: str, value: str) -> str | None:
        """The survey a reply from this contact would answer (kept by feedback)."""
        return await _text_of(self.open_surveys, contact_key(kind, value))

    # -- customer directory -------------------------------------------------------------------
    async def get_customer(self, customer_id: str) -> tuple[CustomerRecord, int] | None:
        try:
            entry = await self.customers.get(customer_id)
        except nats.js.errors.KeyNotFoundError:
            return None
        return CustomerRecord.model_validate_json(entry.value or b""), entry.revision or 0

    async def put_customer(self, record: CustomerRecord) -> bool:
        """Store a customer and index its contacts. Returns True when the customer is new.

        The record is the source of truth and is written first with a revision check; the contact
        index follows (a contact moved to another customer is re-pointed, one dropped is removed).
        A crash in between leaves a stale index entry, which `find_customer` ignores and the next
        PUT repairs.
        """
        current = await self.get_customer(record.customer_id)
        data = record.model_dump_json().encode()
        try:
            if current is None:
                await self.customers.create(record.customer_id, data)
            else:
                await self.customers.update(record.customer_id, data, last=current[1])
        except nats.js.errors.KeyWrongLastSequenceError as exc:
            raise Conflict(record.customer_id) from exc
        for kind, value in record.contacts():
            await self.contacts.put(contact_key(kind, value), record.customer_id.encode())
        if current is not None:
            for kind, value in set(current[0].contacts()) - set(record.contacts()):
                await self._unlink(contact_key(kind, value), record.customer_id)
        return current is None

    async def _unlink(self, key: str, customer_id: str) -> None:
        try:
            entry = await self.contacts.get(key)
        except nats.js.errors.KeyNotFoundError:
            return
        if entry.value and entry.value.decode() == customer_id:
            try:
                await self.contacts.delete(key, last=entry.revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                pass  # re-pointed meanwhile

    async def registered(self, contact: Contact) -> list[tuple[str, CustomerRecord]]:
        """(contact kind, registered customer) for each of the contact's values the directory knows,
        most specific first. The index entries, then the customers, are read together (two round
        trips, not one per key); a stale index entry (the customer dropped that contact) is skipped."""
        keys = list(contact.lookup_keys())
        linked = await together(*(_text_of(self.contacts, contact_key(kind, value)) for kind, value in keys))
        hits = [(kind, value, customer_id) for (kind, value), customer_id in zip(keys, linked, strict=True)
                if customer_id is not None]
        found = await together(*(self.get_customer(customer_id) for _, _, customer_id in hits))
        return [(LOOKUP_KINDS[kind], record[0]) for (kind, value, _), record in zip(hits, found, strict=True)
                if record is not None and (kind, value) in record[0].contacts()]


def sender_entry(sender: str) -> str:
    return f"s.{sender}"


async def _text_of(kv: KeyValue, key: str) -> str | None:
    """A key's value as text; None when absent or deleted."""
    try:
        entry = await kv.get(key)
    except nats.js.errors.KeyNotFoundError:
        return None
    return entry.value.decode() if entry.value else None
