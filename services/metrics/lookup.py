"""Finding requests again: a local SQLite index of the event log (request.* events), which metrics
keeps beside its indicators from the same replay and serves `GET /v1/requests` from
(docs/conversations.md#finding-requests-again).

Why this storage: the filters combine (a customer's open requests in one queue, words in what they
wrote) and a million requests must stay fast, which KV keys per contact or ref cannot do without
reading every record they name. The index is a projection: it holds no fact the event log does not,
and is fed by the replay metrics makes anyway (no second read of the log, nothing in the request
path: kept in routing, it cost routing's scale-out, docs/performance.md). With
`KEFU_METRICS_INDEX_PATH` on a volume it keeps what it applied across restarts (a restart skips the
events it has); without it, it lives in SQLite's private temporary file (the path ""), rebuilt with the
replay at start: SQLite keeps only its page cache (about 2 MB) in memory and the rest on disk, so
metrics' memory does not grow with the log as it would with ":memory:".

Words (`q`): lower-cased Latin words, and Chinese text as overlapping two-character pieces, so that
"漏水" finds "厨房漏水了" without a dictionary; a query's pieces must all be there in order.
"""

from __future__ import annotations

import base64
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.config import ConfigError
from shared.contacts import normalise_email, normalise_phone
from shared.contract import subjects as s
from shared.contract.conversation import short_ref
from shared.privacy import contact_key

from .domain.indicators import decode_event

MAX_TEXT = 20000  # characters of a request's words indexed
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[0-9a-z_\u00c0-\u024f]+")
STATE_OF = {s.REQUEST_ACCEPTED: "accepted", s.REQUEST_RESOLVED: "resolved", s.REQUEST_CLOSED: "closed",
            s.REQUEST_REOPENED: "queued", s.REQUEST_PENDING: "pending", s.REQUEST_RESUMED: "accepted",
            s.REQUEST_DISPATCHED: "offered"}
SUBJECTS = (s.REQUEST_RECEIVED, s.REQUEST_ASSIGNED, s.REQUEST_TRANSFERRED, s.REQUEST_CORRECTED, s.REQUEST_MESSAGE,
            *STATE_OF)
# `n` numbers requests in the order the event log received them: "newest first" and the cursor are
# by it, and every index below ends in it (SQLite keeps the rowid last in each), so a filtered page
# is read backwards from an index and stops at the limit. The words of request n are row n of `words`.
SCHEMA = """
create table if not exists meta (key text primary key, value text);
create table if not exists requests (
    n integer primary key, request_id text not null unique, received_at text not null, channel text,
    customer_id text, ref text, state text, department text, co_departments text default '', queue text,
    agent_id text);
create index if not exists by_customer on requests (customer_id);
create index if not exists by_ref on requests (ref);
create index if not exists by_queue on requests (queue);
create index if not exists by_state on requests (state);
create table if not exists contacts (contact text, n integer, primary key (contact, n)) without rowid;
create virtual table if not exists words using fts5 (text, tokenize='unicode61');
"""


def tokens(text: str) -> list[str]:
    """The index's words of a text: Latin words lower-cased, Chinese as two-character pieces."""
    text = text[:MAX_TEXT].lower()
    out: list[str] = []
    pos = 0
    for match in _CJK.finditer(text):
        out += _WORD.findall(text[pos:match.start()])
        run = match.group()
        out += [run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)]
        pos = match.end()
    out += _WORD.findall(text[pos:])
    return out


def contact_keys(contact: str, region: str = "CN") -> list[str]:
    """The hashed keys a contact given to the lookup may be stored under (intake's normalisation)."""
    value = contact.strip()
    keys = []
    if "@" in value and (email := normalise_email(value)):
        keys.append(contact_key("email", email))
    if re.fullmatch(r"[+\d][\d\s()-]{4,}", value) and (phone := normalise_phone(value, region)):
        keys.append(contact_key("phone", phone))
    keys += [contact_key("wechat", value), contact_key("app", value)]
    return keys


@dataclass(frozen=True)
class Scope:
    """What the caller may see: everything (admin), or these departments and the requests they hold."""

    everything: bool
    departments: tuple[str, ...] = ()
    agent_id: str | None = None


@dataclass(frozen=True)
class Query:
    customer_id: str | None = None
    contact: str | None = None
    ref: str | None = None
    state: str | None = None
    queue: str | None = None
    q: str | None = None
    limit: int = 20
    cursor: str | None = None


class CursorError(ValueError):
    pass


class LookupIndex:
    def __init__(self, path: str = "", *, region: str = "CN") -> None:
        """`path`: a file kept across restarts; "" SQLite's private temporary file, deleted when
        closed; ":memory:" all in memory (it grows with the log). A file SQLite cannot open or
        write is a ConfigError, at start rather than in the middle of the replay."""
        try:
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            cache_size = self.db.execute("pragma cache_size").fetchone()[0]  # SQLite's default, ~2 MB
            if path == "":
                # SQLite opens its temporary file when the page cache first spills: with a one-page
                # cache the schema spills, so an unwritable temp directory shows now
                self.db.execute("pragma cache_size=1")
            self.db.execute("pragma journal_mode=wal")
            self.db.execute("pragma synchronous=normal")
            self.db.executescript(SCHEMA)
            if path == "":
                self.db.execute(f"pragma cache_size={int(cache_size)}")
        except sqlite3.DatabaseError as exc:  # cannot open or write it, or not a database
            where = "SQLite's temporary directory (SQLITE_TMPDIR, TMPDIR, /var/tmp, /tmp)" if path == "" else path
            raise ConfigError(f"KEFU_METRICS_INDEX_PATH: the lookup index cannot be kept in {where}: {exc}; "
                              "name a file on a writable volume, or ':memory:'") from None
        self.region = region

    def close(self) -> None:
        self.db.close()

    # -- position ---------------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self.db.execute("select value from meta where key = ?", (key,)).fetchone()
        return row[0] if row else None

    def position(self) -> int:
        return int(self.meta("seq") or 0)

    def reset(self) -> None:
        self.db.executescript("delete from requests; delete from contacts; delete from words; delete from meta;")

    # -- following the log ------------------------------------------------------------------------
    def apply_batch(self, entries: Iterable[tuple[int, str, bytes | dict[str, Any] | None]], *,
                    stream_id: str = "") -> int:
        """Apply (seq, subject, event) entries in one transaction, the event as its JSON bytes or
        already decoded; returns the last sequence applied."""
        last = self.position()
        cur = self.db.cursor()
        cur.execute("begin")
        try:
            for seq, subject, data in entries:
                if seq <= last:
                    continue
                if subject in SUBJECTS:
                    event = decode_event(data) if isinstance(data, bytes) else data
                    if isinstance(event, dict) and isinstance(event.get("request_id"), str):
                        self._apply(cur, subject, event)
                last = seq
            cur.execute("insert or replace into meta values ('seq', ?)", (str(last),))
            if stream_id:
                cur.execute("insert or replace into meta values ('stream', ?)", (stream_id,))
            cur.execute("commit")
        except BaseException:
            cur.execute("rollback")
            raise
        return last

    def _apply(self, cur: sqlite3.Cursor, subject: str, e: dict[str, Any]) -> None:
        rid = e["request_id"]
        if subject == s.REQUEST_RECEIVED:
            customer = e.get("customer") or {}
            cur.execute("insert or ignore into requests (request_id, received_at, channel, customer_id, ref, state) "
                        "values (?, ?, ?, ?, ?, 'queued')",
                        (rid, str(e.get("received_at") or e.get("occurred_at")), e.get("channel"),
                         customer.get("customer_id"), short_ref(rid)))
            if not cur.rowcount:
                return  # indexed already
            n = cur.lastrowid
            values = [("phone", customer.get("phone")), ("email", customer.get("email")),
                      ("wechat", customer.get("wechat_openid")),
                      ("app", (e.get("channel_meta") or {}).get("app_user_id"))]
            cur.executemany("insert or ignore into contacts values (?, ?)",
                            [(contact_key(kind, str(v)), n) for kind, v in values if v])
            cur.execute("insert into words (rowid, text) values (?, ?)",
                        (n, " ".join(tokens(f"{e.get('subject') or ''} {e.get('body') or ''}"))))
        elif subject == s.REQUEST_ASSIGNED:
            cur.execute("update requests set department = ?, co_departments = ?, queue = ?, "
                        "agent_id = coalesce(?, agent_id) where request_id = ?",
                        (e.get("department"), "," + ",".join(e.get("co_departments") or []) + ",", e.get("queue"),
                         e.get("agent_id"), rid))
        elif subject == s.REQUEST_TRANSFERRED:
            cur.execute("update requests set department = coalesce(?, department), queue = coalesce(?, queue), "
                        "agent_id = ?, state = ? where request_id = ?",
                        (e.get("department"), e.get("queue"), e.get("agent_id"),
                         "offered" if e.get("agent_id") else "queued", rid))
        elif subject == s.REQUEST_CORRECTED:  # a new priority moves a waiting request to another queue
            cur.execute("update requests set queue = coalesce(?, queue) where request_id = ?", (e.get("queue"), rid))
        elif subject == s.REQUEST_MESSAGE:
            more = " ".join(tokens(f"{e.get('subject') or ''} {e.get('text') or ''}"))
            if more:
                cur.execute("update words set text = substr(text || ' ' || ?, 1, ?) "
                            "where rowid = (select n from requests where request_id = ?)", (more, 4 * MAX_TEXT, rid))
        else:
            state = STATE_OF[subject]
            agent = e.get("agent_id") if subject in (s.REQUEST_ACCEPTED, s.REQUEST_DISPATCHED) else None
            cur.execute("update requests set state = ?, agent_id = coalesce(?, agent_id) where request_id = ?",
                        (state, agent, rid))

    # -- finding ----------------------------------------------------------------------------------
    def find(self, query: Query, scope: Scope) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first; (rows, cursor of the next page or None)."""
        where: list[str] = []
        args: list[object] = []
        if query.customer_id:
            where.append("r.customer_id = ?")
            args.append(query.customer_id)
        if query.ref:
            where.append("r.ref = ?")
            args.append(query.ref.strip().strip("[]#").upper())
        if query.state:
            where.append("r.state = ?")
            args.append(query.state)
        if query.queue:
            where.append("r.queue = ?")
            args.append(query.queue)
        if query.contact:
            keys = contact_keys(query.contact, self.region)
            where.append(f"r.n in (select n from contacts where contact in ({','.join('?' * len(keys))}))")
            args += keys
        source = "requests r"
        if query.q:
            words = tokens(query.q)
            if not words:
                return [], None
            # the full-text index drives: its matches come newest first and the page stops at the limit
            source = "words w join requests r on r.n = w.rowid"
            where.insert(0, "words match ?")
            args.insert(0, " AND ".join('"' + w.replace('"', "") + '"' for w in words))
        if not scope.everything:
            allowed = ["r.department in (" + ",".join("?" * len(scope.departments)) + ")"] if scope.departments else []
            args += list(scope.departments)
            for d in scope.departments:
                allowed.append("r.co_departments like ?")
                args.append(f"%,{d},%")
            if scope.agent_id:
                allowed.append("r.agent_id = ?")
                args.append(scope.agent_id)
            if not allowed:
                return [], None
            where.append("(" + " or ".join(allowed) + ")")
        if query.cursor:
            where.append("r.n < ?")
            args.append(_decode_cursor(query.cursor))
        order = "w.rowid" if query.q else "r.n"
        sql = ("select r.n, r.request_id, r.received_at, r.channel, r.customer_id, r.ref, r.state, r.department, "
               f"r.queue, r.agent_id from {source}" + (" where " + " and ".join(where) if where else "") +
               f" order by {order} desc limit ?")
        rows = self.db.execute(sql, [*args, query.limit + 1]).fetchall()
        names = ("request_id", "received_at", "channel", "customer_id", "ref", "state", "department", "queue",
                 "agent_id")
        found = [dict(zip(names, row[1:], strict=True)) for row in rows[:query.limit]]
        more = len(rows) > query.limit
        return found, _encode_cursor(rows[query.limit - 1][0]) if more else None


def _encode_cursor(n: int) -> str:
    return base64.urlsafe_b64encode(f"n:{n}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise CursorError("not a cursor this API gave out") from None
    if not re.fullmatch(r"n:\d{1,18}", text):
        raise CursorError("not a cursor this API gave out")
    return int(text[2:])

