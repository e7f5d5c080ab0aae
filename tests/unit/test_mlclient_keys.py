"""Key layout of the prediction cache."""

from __future__ import annotations

import json

from edgeloop.mlclient import keys


def test_prediction_key_carries_version_features_event_selection_strategy():
    key = keys.prediction_key("edgeloop:pred", "v2024", "E0-2024-08-16-MUN-FUL", "home", "s1", "f00d")
    assert key == "edgeloop:pred:p:v2024:f00d:E0-2024-08-16-MUN-FUL:home:s1"


def test_empty_components_are_explicit():
    assert keys.prediction_key("x", "g1", "e", "draw") == "x:p:g1:-:e:draw:-"


def test_colons_in_ids_cannot_make_two_requests_collide():
    a = keys.prediction_key("x", "m", "a:b", "c")
    b = keys.prediction_key("x", "m", "a", "b:c")
    assert a != b
    assert a.count(":") == b.count(":") == keys.prediction_key("x", "m", "a", "b").count(":")


def test_different_versions_make_different_keys():
    assert keys.prediction_key("x", "v1", "e", "home") != keys.prediction_key("x", "v2", "e", "home")


def test_params_hash_ignores_key_order_but_not_values():
    a = {"min_edge": 0.05, "staking": "flat"}
    assert keys.params_hash(a) == keys.params_hash(json.loads('{"staking": "flat", "min_edge": 0.05}'))
    assert keys.params_hash(a) != keys.params_hash({**a, "min_edge": 0.06})
    assert keys.evaluation_key("x", "g", "s1", a).startswith("x:e:g:s1:")


def test_lock_is_per_key_set_whatever_the_order():
    assert keys.lock_key("x", ["b", "a"]) == keys.lock_key("x", ["a", "b"])
    assert keys.lock_key("x", ["a"]) != keys.lock_key("x", ["a", "b"])


def test_index_generation_and_stats_keys_share_the_prefix():
    for key in (keys.strategy_index_key("x", "s:1"), keys.generation_key("x"), keys.stats_key("x")):
        assert key.startswith("x:")
    assert keys.strategy_index_key("x", "s:1") == "x:ix:s%3A1"


def test_batch_keys_equal_the_key_of_each_request_whatever_the_ids():
    from edgeloop.proto import ml_service_pb2 as pb

    odd = ["e", "a:b", "50%", "", "-", "é:ü", "x::y", ":", "%3A", "s\n:t", "a b"]
    requests = [
        pb.PredictionRequest(event_id=e, selection=s, model_version=v, strategy_id=t)
        for e in odd for s in ("home", "", "d:raw") for v in ("", "v1", "v:2") for t in ("", "s1", "s:%")
    ]
    model = {"": "g123", "v1": "v1", "v:2": "v:2"}.get
    for prefix in ("edgeloop:pred", "x", "a::b", "50%"):
        for features in ("", "f00d", "f:1"):
            got = keys.prediction_keys(prefix, model, requests, features)
            assert got == [
                keys.prediction_key(prefix, model(r.model_version), r.event_id, r.selection, r.strategy_id, features)
                for r in requests
            ]
        # the fast path alone (plain ids), and one hash per request
        plain = [pb.PredictionRequest(event_id=f"E0-{i}", selection="home") for i in range(50)]
        assert keys.prediction_keys(prefix, model, plain) == [keys.prediction_key(prefix, "g123", r.event_id, "home") for r in plain]
        hashes = [f"h{i % 3}" for i in range(50)]
        assert keys.prediction_keys(prefix, model, plain, hashes) == [
            keys.prediction_key(prefix, "g123", r.event_id, "home", "", h) for r, h in zip(plain, hashes)
        ]
    # one odd request in a plain batch sends the whole batch the careful way
    mixed = plain + [pb.PredictionRequest(event_id="a:b", selection="home")]
    assert keys.prediction_keys("x", model, mixed)[-1] == "x:p:g123:-:a%3Ab:home:-"
