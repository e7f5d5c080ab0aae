"""bench/cache_coherence.py through its own code on a small budget, against redis-server
binaries it starts itself: what each level-1 coherence method covers and what it costs in
messages, and which of them stop serving level 1 when Redis hangs (the facts docs/cache.md
rests its choice on; no timing is asserted)."""

from __future__ import annotations

import json
import shutil

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server binary")
def test_pubsub_and_client_tracking_cover_the_cache_s_invalidations_at_their_costs(capsys):
    from bench import cache_coherence

    # Part 2 (CacheConfig) needs a Redis >= 7.4 that is not part of the machine: left out here.
    cache_coherence.main(["--rounds", "4", "--readers", "2", "--redis74-server", "", "--json"])
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    p1 = figures["part_1"]
    for method in cache_coherence.METHODS:
        inv, cov = p1[method]["invalidation"], p1[method]["coverage"]
        assert inv["samples"] == 2 * 4 and inv["not_within_1s"] == 0, method
        assert cov["strategy_stale_after_invalidation"] == 0 and cov["promotion_stale_after_invalidation"] == 0
        assert cov["own_store_stale_after_invalidation"] == 0
        assert p1[method]["outage"]["serving_again_after_restart"] == 2
        assert p1[method]["cost"]["promotion_messages_per_reader"] == 1

    pubsub, keys, bcast = (p1[m]["cost"] for m in cache_coherence.METHODS)
    # Pub/sub: nothing for a store, one message for a strategy; tracking: one per key (keys
    # mode) or every key in one message (BCAST), to every process.
    assert pubsub["store_1000_messages_per_reader"] == 0 and pubsub["strategy_1000_messages_per_reader"] == 1
    assert keys["store_1000_messages_per_reader"] == 1000 and keys["strategy_1000_keys_per_reader"] == 1000
    assert bcast["store_1000_keys_per_reader"] == 1000 and bcast["strategy_1000_keys_per_reader"] == 1000

    # A process's own store evicts what it just kept (tracking); NOLOOP keeps it, untracked: stale.
    assert p1["pubsub"]["coverage"]["own_store_kept"] == 20
    assert p1["tracking-keys"]["coverage"]["own_store_kept"] == 0
    noloop = p1["tracking-keys-noloop"]["coverage"]
    assert noloop["own_store_kept"] == 20 and noloop["own_store_stale_after_invalidation"] == 20

    # Redis hung: the ping lease stops level 1; tracking alone never notices.
    assert p1["pubsub"]["outage"]["hung_still_serving_after_2s"] == 0
    assert p1["tracking-keys"]["outage"]["hung_still_serving_after_2s"] == 2
    assert p1["tracking-bcast"]["outage"]["hung_still_serving_after_2s"] == 2
    assert p1["tracking-bcast-lease"]["outage"]["hung_still_serving_after_2s"] == 0
    assert figures["part_2"].startswith("not measured")
