"""Redis commands packed once and sent on a connection of a redis-py pool: the cache's hot path.

redis-py's command layer (``Redis.execute_command``) costs ~25 µs per command (retry wrapper,
observability hooks, connection-pool bookkeeping) plus a Python-level pass over every
argument before hiredis packs them: for a 1,000-key MGET or a 100-entry store script that is
a tenth of a millisecond or more, on a path whose whole budget is 3 ms (``bench/cache.py``).
Here several commands are packed by hiredis in one call each, written in one ``send`` and
their replies read back in order.

Everything else stays redis-py's: the connections come from the client's pool (same
timeouts, health checks, no retries), errors are redis-py's exceptions (``ConnectionError``,
``TimeoutError``, ``ResponseError``, ``NoScriptError``), and a connection that failed is
disconnected before it is used again, so a half-read reply is never read by the next command.

A connection is taken from the pool once and kept here between calls (one per call in
flight at once), not checked out and back each time: redis-py 8's checkout and return cost
~25-40 µs a call on a busy machine (observability hooks, a ``can_read`` poll of the socket),
on the path of every lookup. That poll guards against a connection returned with a reply
unread, which cannot happen here: every reply is read, or the connection dropped. After a
fork the pool makes new connections in the child, and so does this (the parent's sockets are
the parent's).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import hiredis
import redis
from redis.commands.core import Script
from redis.connection import Connection

from edgeloop.mlclient.keys import HeadAndTails


def pack_mget(first: str, keys: Sequence[bytes]) -> bytes:
    """``MGET first *keys``, packed. Keys of one head (``keys.HeadAndTails``: a large lookup's)
    are packed from head and tails without being built: 1,000 cost ~0.12 ms instead of ~0.19
    (concatenated, then packed by hiredis)."""
    if not isinstance(keys, HeadAndTails) or not keys.tails:
        command: tuple[Any, ...] = ("MGET", first, *keys)
        return hiredis.pack_command(command)
    head, tails = keys.head, keys.tails
    name = first.encode()
    # Each key's bulk header and the head, by the tail's length (a batch has a few lengths).
    headers = {n: b"$%d\r\n%b" % (len(head) + n, head) for n in set(map(len, tails))}
    return b"".join((b"*%d\r\n$4\r\nMGET\r\n$%d\r\n%b\r\n" % (len(tails) + 2, len(name), name),
                     _CRLF.join(map(bytes.__add__, map(headers.__getitem__, map(len, tails)), tails)), _CRLF))


_CRLF = b"\r\n"


class RawRedis:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._idle: list[Connection] = []  # checked out of the pool, free for the next call
        self._pid = os.getpid()

    def execute(self, *commands: tuple[Any, ...] | bytes, meanwhile: Callable[[], None] | None = None) -> list[Any]:
        """Send ``commands`` (each a tuple of arguments, or already packed: ``pack_mget``) in
        one write; their replies, in order.

        ``meanwhile`` runs between the write and the first read, while Redis works. An error
        reply raises (after the connection is dropped, replies unread)."""
        packed = b"".join([c if isinstance(c, bytes) else hiredis.pack_command(c) for c in commands])
        conn = self._connection()
        try:
            conn.send_packed_command((packed,))
            if meanwhile is not None:
                meanwhile()
            replies = [conn.read_response() for _ in commands]
        except BaseException:
            conn.disconnect()  # (it reconnects when next used)
            self._idle.append(conn)
            raise
        self._idle.append(conn)
        return replies

    def _connection(self) -> Connection:
        if self._pid != os.getpid():  # a forked child: not the parent's sockets
            self._idle = []
            self._pid = os.getpid()
        try:
            return self._idle.pop()  # (atomic: threads share the list safely)
        except IndexError:
            return self.client.connection_pool.get_connection()

    def evalsha(self, script: Script, keys: Sequence[str | bytes], args: Sequence[Any],
                meanwhile: Callable[[], None] | None = None) -> Any:
        """The reply of ``script`` (loaded if Redis lost it, e.g. after a restart, and run again)."""
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            return self.execute(command, meanwhile=meanwhile)[0]
        except redis.exceptions.NoScriptError:
            script.sha = self.client.script_load(script.script)
            # (``meanwhile`` ran already: the error is read after it)
            return self.execute(("EVALSHA", script.sha, *command[2:]))[0]
