"""The cache's parsing of stored answers: many serialized predictions parsed in one call."""

from __future__ import annotations

from edgeloop.mlclient.cache.codec import decode_evaluations, decode_predictions
from edgeloop.proto import ml_service_pb2 as pb


def _prediction(i: int, recommendation: str = "back") -> pb.Prediction:
    return pb.Prediction(event_id=f"E0-{i}", selection="home", probability=i / 1000, confidence=0.5,
                         recommendation=recommendation, model_version="v1", features_hash=f"f{i}")


def test_many_answers_parse_in_order_and_equal_their_one_by_one_parse():
    answers = [_prediction(i) for i in range(1000)]
    values = [a.SerializeToString() for a in answers]
    assert decode_predictions(values) == answers == [pb.Prediction.FromString(v) for v in values]


def test_empty_large_and_single_answers():
    empty = pb.Prediction()  # serializes to b"": still one answer
    large = _prediction(1, recommendation="x" * 40_000)  # a length that needs a 3-byte varint
    for batch in ([empty, _prediction(2)], [_prediction(3), large, empty], [large], [empty], []):
        assert decode_predictions([a.SerializeToString() for a in batch]) == batch


def test_evaluations_parse_one_by_one():
    e = pb.EvaluateStrategyResponse(strategy_id="s1", confidence=0.7, model_version="v1")
    assert decode_evaluations([e.SerializeToString()]) == [e]
