"""Key layout of the prediction cache."""

from __future__ import annotations

import json

from edgeloop.mlclient import keys
from edgeloop.proto import ml_service_pb2 as pb


def test_prediction_key_is_the_model_head_then_the_serialized_request_and_features_hash():
    key = keys.prediction_key("edgeloop:pred", "g2024", "E0-2024-08-16-MUN-FUL", "home", "s1", "f00d")
    request = pb.PredictionRequest(event_id="E0-2024-08-16-MUN-FUL", selection="home", strategy_id="s1")
    assert key == b"edgeloop:pred:p:g2024:" + request.SerializeToString() + b"\0f00d"
    # the tail is level 1's key for the same prediction, and reads back as the request
    assert key.removeprefix(b"edgeloop:pred:p:g2024:") == keys.request_key(request, "f00d")
    assert pb.PredictionRequest.FromString(key.split(b"\0")[0].split(b"g2024:", 1)[1]) == request


def test_no_features_hash_no_suffix_and_a_named_version_is_in_the_request():
    plain = keys.prediction_key("x", "g1", "e", "draw")
    assert plain == b"x:p:g1:" + pb.PredictionRequest(event_id="e", selection="draw").SerializeToString()
    assert keys.prediction_key("x", "g1", "e", "draw", model_version="v1") != plain


def test_ids_and_hashes_cannot_make_two_requests_collide():
    made = [
        keys.prediction_key("x", "m", "a:b", "c"),
        keys.prediction_key("x", "m", "a", "b:c"),
        keys.prediction_key("x", "m", "a", "b"),
        keys.prediction_key("x", "m", "a", "b", features_hash="c"),
        keys.prediction_key("x", "m", "a", "b", strategy_id="c"),
        keys.prediction_key("x", "m", "a", "b\0c"),
        keys.prediction_key("x", "m:a", "", "b"),
        keys.prediction_key("x", "m", "", "b", model_version="a"),
    ]
    assert len(set(made)) == len(made)


def test_different_model_tokens_make_different_keys_and_the_model_part_is_escaped():
    assert keys.prediction_key("x", "v1", "e", "home") != keys.prediction_key("x", "v2", "e", "home")
    assert keys.prediction_key_base("x", "v:2") == b"x:p:v%3A2:"


def test_params_hash_ignores_key_order_but_not_values():
    a = {"min_edge": 0.05, "staking": "flat"}
    assert keys.params_hash(a) == keys.params_hash(json.loads('{"staking": "flat", "min_edge": 0.05}'))
    assert keys.params_hash(a) != keys.params_hash({**a, "min_edge": 0.06})
    assert keys.evaluation_key("x", "g", "s1", a).startswith(b"x:e:g:s1:")


def test_lock_is_per_key_set_whatever_the_order():
    assert keys.lock_key("x", [b"b", b"a"]) == keys.lock_key("x", [b"a", b"b"])
    assert keys.lock_key("x", [b"a"]) != keys.lock_key("x", [b"a", b"b"])
    # binary keys: no separator can make two sets one
    assert keys.lock_key("x", [b"a\nb"]) != keys.lock_key("x", [b"a", b"b"]) != keys.lock_key("x", [b"ab"])


def test_index_generation_and_stats_keys_share_the_prefix():
    for key in (keys.strategy_index_key("x", "s:1"), keys.generation_key("x"), keys.stats_key("x")):
        assert key.startswith("x:")
    assert keys.strategy_index_key("x", "s:1") == "x:ix:s%3A1"


def test_batch_keys_equal_the_key_of_each_request_whatever_the_ids():
    odd = ["e", "a:b", "50%", "", "-", "é:ü", "x::y", ":", "%3A", "s\n:t", "a b"]
    requests = [
        pb.PredictionRequest(event_id=e, selection=s, model_version=v, strategy_id=t)
        for e in odd for s in ("home", "", "d:raw") for v in ("", "v1", "v:2") for t in ("", "s1", "s:%")
    ]
    for prefix in ("edgeloop:pred", "x", "a::b", "50%"):
        for features in ("", "f00d", "f:1"):
            got = list(keys.HeadAndTails(keys.prediction_key_base(prefix, "g123"), keys.request_keys(requests, features)))
            assert got == [
                keys.prediction_key(prefix, "g123", r.event_id, r.selection, r.strategy_id, features, r.model_version)
                for r in requests
            ]
            assert len(set(got)) == len(requests)
        # one hash per request ("": none)
        hashes = [("", "h1", "h:2")[i % 3] for i in range(len(requests))]
        batch = keys.HeadAndTails(keys.prediction_key_base(prefix, "g123"), keys.request_keys(requests, hashes))
        assert len(batch) == len(requests) and batch[1:3] == [batch[1], batch[2]]
        assert list(batch) == [
            keys.prediction_key(prefix, "g123", r.event_id, r.selection, r.strategy_id, h, r.model_version)
            for r, h in zip(requests, hashes)
        ]


def test_a_large_lookup_is_packed_from_head_and_tails_as_hiredis_packs_the_keys():
    import hiredis

    from edgeloop.mlclient.rawredis import pack_mget

    requests = [pb.PredictionRequest(event_id=f"E0-{i}" * (i % 7 + 1), selection="home") for i in range(300)]
    batch = keys.HeadAndTails(keys.prediction_key_base("{edgeloop:pred}", "g1"), keys.request_keys(requests, "f"))
    assert pack_mget("{edgeloop:pred}:gen", batch) == hiredis.pack_command(("MGET", "{edgeloop:pred}:gen", *batch))
    empty = keys.HeadAndTails(b"x:p:g:", [])
    assert pack_mget("x:gen", empty) == hiredis.pack_command(("MGET", "x:gen"))
