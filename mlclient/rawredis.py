"""Redis commands packed once and sent on a connection of a redis-py pool: the cache's hot path.

redis-py's command layer (``Redis.execute_command``) costs ~25 µs per command (retry wrapper,
observability hooks, connection-pool bookkeeping) plus a Python-level pass over every
argument before hiredis packs them: for a 1,000-key MGET or a 100-entry store script that is
a tenth of a millisecond or more, on a path whose whole budget is 3 ms (``bench/cache.py``).
Here several commands are packed by hiredis in one call each, written in one ``send`` and
their replies read back in order.

Everything else stays redis-py's: the connection comes from the client's pool (same
timeouts, health checks, no retries), errors are redis-py's exceptions (``ConnectionError``,
``TimeoutError``, ``ResponseError``, ``NoScriptError``), and a connection that failed is
disconnected before it returns to the pool, so a half-read reply is never read by the next
command.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import hiredis
import redis
from redis.commands.core import Script


class RawRedis:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def execute(self, *commands: tuple[Any, ...], meanwhile: Callable[[], None] | None = None) -> list[Any]:
        """Send ``commands`` (each a tuple of arguments) in one write; their replies, in order.

        ``meanwhile`` runs between the write and the first read, while Redis works. An error
        reply raises (after the connection is dropped, replies unread)."""
        pack = hiredis.pack_command
        packed = pack(commands[0]) if len(commands) == 1 else b"".join([pack(c) for c in commands])
        pool = self.client.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_packed_command((packed,))
            if meanwhile is not None:
                meanwhile()
            return [conn.read_response() for _ in commands]
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)

    def evalsha(
        self,
        script: Script,
        keys: Sequence[str],
        args: Sequence[Any],
        meanwhile: Callable[[], None] | None = None,
        before: Sequence[tuple[Any, ...]] = (),
    ) -> Any:
        """The reply of ``script`` (loaded if Redis lost it, e.g. after a restart, and run again).
        ``before``: commands sent ahead of it in the same write (their replies are dropped)."""
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            return self.execute(*before, command, meanwhile=meanwhile)[-1]
        except redis.exceptions.NoScriptError:
            script.sha = self.client.script_load(script.script)
            # (``meanwhile`` ran already: the error is read after it)
            return self.execute(("EVALSHA", script.sha, *command[2:]))[0]
