"""Level 1 of the prediction cache (``edgeloop.mlclient.cache.local``): bounds, TTL, epochs, fork."""

from __future__ import annotations

import os

import pytest

from edgeloop.mlclient.cache.local import ENTRY_OVERHEAD_BYTES, LocalCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_entries_bound_evicts_the_entries_put_longest_ago():
    cache = LocalCache(max_entries=3, max_bytes=10**9, ttl_s=60)
    cache.put_many([(f"k{i}", b"v", "") for i in range(3)], cache.epoch)
    cache.get_many(["k0"])  # a hit does not reorder (first in, first out) …
    cache.put_many([("k1", b"w", "")], cache.epoch)  # … a put does: k1 is now the newest
    cache.put_many([("k3", b"v", "")], cache.epoch)
    assert cache.get_many(["k0", "k1", "k2", "k3"]) == [None, b"w", b"v", b"v"]
    assert len(cache) == 3


def test_bytes_bound_holds_under_many_more_entries_than_fit():
    entry = len("k00000") + 100 + ENTRY_OVERHEAD_BYTES
    cache = LocalCache(max_entries=10**6, max_bytes=50 * entry, ttl_s=60)
    for i in range(0, 10_000, 100):
        cache.put_many([(f"k{j:05d}", b"x" * 100, "") for j in range(i, i + 100)], cache.epoch)
        assert cache.bytes <= 50 * entry
    assert len(cache) == 50
    assert cache.get_many(["k09999", "k00000"]) == [b"x" * 100, None]


def test_entries_expire_after_the_ttl():
    clock = Clock()
    cache = LocalCache(10, 10**6, ttl_s=5, clock=clock)
    cache.put_many([("k", b"v", "")], cache.epoch)
    clock.now += 4.9
    assert cache.get_many(["k"]) == [b"v"]
    clock.now += 0.2
    assert cache.get_many(["k"]) == [None]


def test_expired_entries_leave_and_are_no_longer_counted():
    clock = Clock()
    cache = LocalCache(10, 10**6, ttl_s=5, clock=clock)
    cache.put_many([("old", b"v", "s-1")], cache.epoch)
    clock.now += 3
    cache.put_many([("new", b"v", "")], cache.epoch)
    clock.now += 2.5
    assert cache.get_many(["old", "new"]) == [None, b"v"]
    assert len(cache) == 1 and cache.bytes == len("new") + 1 + ENTRY_OVERHEAD_BYTES
    assert cache.invalidate_strategies(["s-1"]) == 0


def test_a_new_tag_empties_level_1_and_moves_the_epoch():
    cache = LocalCache(10, 10**6, 60)
    values, epoch = cache.lookup([b"k"], "token-1")
    assert values == [None] and cache.put_many([(b"k", b"v", "")], epoch)
    assert cache.lookup([b"k"], "token-1") == ([b"v"], epoch)
    values, newer = cache.lookup([b"k"], "token-2")  # the catalogue changed: nothing of token-1 is served
    assert values == [None] and newer != epoch and len(cache) == 0
    assert cache.put_many([(b"k", b"old", "")], epoch) is False  # read under token-1: not kept


def test_a_single_get_answers_as_a_lookup_of_one_key():
    clock = Clock()
    cache = LocalCache(10, 10**6, ttl_s=5, clock=clock)
    assert cache.get(b"k", "token-1") is None
    cache.put_many([(b"k", b"v", "")], cache.epoch)
    assert cache.get(b"k", "token-1") == b"v" and cache.get(b"other", "token-1") is None
    clock.now += 5.1  # expired: gone, and no longer counted
    assert cache.get(b"k", "token-1") is None and len(cache) == 0
    cache.put_many([(b"k", b"v", "")], cache.epoch)
    epoch = cache.epoch
    assert cache.get(b"k", "token-2") is None  # another tag empties level 1, as lookup does
    assert len(cache) == 0 and cache.epoch != epoch


def test_an_answer_read_before_an_invalidation_is_not_kept():
    cache = LocalCache(10, 10**6, 60)
    epoch = cache.epoch
    cache.invalidate_strategies(["s-1"])  # arrives while the lookup is in Redis
    assert cache.put_many([("k", b"old", "s-1")], epoch) is False
    assert cache.get_many(["k"]) == [None]


def test_strategy_invalidation_drops_only_that_strategys_entries():
    cache = LocalCache(10, 10**6, 60)
    cache.put_many([("a", b"1", "s-1"), ("b", b"2", "s-2"), ("c", b"3", "")], cache.epoch)
    assert cache.invalidate_strategies(["s-1", "s-unknown"]) == 1
    assert cache.get_many(["a", "b", "c"]) == [None, b"2", b"3"]
    assert cache.bytes == sum(len(k) + 1 + ENTRY_OVERHEAD_BYTES for k in "bc")


def test_replacing_an_entry_keeps_the_byte_count_exact():
    cache = LocalCache(10, 10**6, 60)
    cache.put_many([("a", b"1", "s-1")], cache.epoch)
    cache.put_many([("a", b"22", "")], cache.epoch)
    assert cache.bytes == 1 + 2 + ENTRY_OVERHEAD_BYTES
    assert cache.invalidate_strategies(["s-1"]) == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_empty():
    cache = LocalCache(10, 10**6, 60)
    cache.put_many([("a", b"1", "")], cache.epoch)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reports what it sees
        os.write(write, b"empty" if cache.get_many(["a"]) == [None] and cache.bytes == 0 else b"full")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 16) == b"empty"
    assert cache.get_many(["a"]) == [b"1"]  # the parent keeps its own
