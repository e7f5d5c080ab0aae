"""Model tokens: the catalogue decides the key's version part before any lookup."""

from __future__ import annotations

import pytest

from edgeloop.core.errors import MLServiceUnavailable
from edgeloop.mlclient.catalogue import ModelCatalogue, fingerprint
from edgeloop.proto import ml_service_pb2 as pb


def version(v: str, status: str = "serving", end: str = "2024-07-01") -> pb.ModelVersion:
    return pb.ModelVersion(model_name="outcome", version=v, status=status, train_end=end)


class Registry:
    def __init__(self, *models: pb.ModelVersion) -> None:
        self.models = list(models)
        self.calls = 0
        self.down = False

    def __call__(self, name: str):
        self.calls += 1
        if self.down:
            raise MLServiceUnavailable("down")
        return self.models


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_fingerprint_changes_with_any_promotion_and_ignores_order():
    a, b = version("v1", "retired"), version("v2")
    assert fingerprint([a, b]) == fingerprint([b, a])
    assert fingerprint([a, b]) != fingerprint([a, version("v2", "retired"), version("v3")])


def test_named_version_is_used_as_is_without_asking_the_service():
    registry = Registry(version("v1"))
    catalogue = ModelCatalogue(registry, ttl_s=60)
    assert catalogue.token("outcome", "v0") == "v0"
    assert registry.calls == 0


def test_token_is_cached_until_ttl_or_generation_change():
    registry, clock = Registry(version("v1")), Clock()
    catalogue = ModelCatalogue(registry, ttl_s=5, clock=clock)
    first = catalogue.token("outcome")
    assert catalogue.token("outcome") == first and registry.calls == 1

    registry.models = [version("v1", "retired"), version("v2")]
    assert catalogue.token("outcome") == first  # nobody said anything yet
    assert catalogue.observe_generation(0) is False  # first generation seen: tokens not trusted
    assert catalogue.token("outcome") != first and registry.calls == 2
    assert catalogue.observe_generation(0) is True

    second = catalogue.token("outcome")
    registry.models.append(version("v3"))
    clock.now += 5.1
    assert catalogue.token("outcome") != second  # the TTL bounds staleness without a bump
    assert catalogue.status_of("outcome", "v3") == "serving" and catalogue.status_of("outcome", "v9") is None


def test_keeps_serving_its_catalogue_while_the_service_is_down_unless_models_changed():
    registry, clock = Registry(version("v1")), Clock()
    catalogue = ModelCatalogue(registry, ttl_s=1, clock=clock)
    catalogue.observe_generation(7)
    token = catalogue.token("outcome")
    registry.down = True
    clock.now += 2
    assert catalogue.token("outcome") == token
    assert catalogue.observe_generation(8) is False  # a promotion happened: no guessing
    with pytest.raises(MLServiceUnavailable):
        catalogue.token("outcome")
