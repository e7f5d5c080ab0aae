"""The ML client Protocol matches the real client, the cached client and the tests' stand-in."""

from __future__ import annotations

import inspect

import pytest

from edgeloop.mlclient.cache import CachedMLClient
from edgeloop.mlclient.client import MLClient
from edgeloop.mlclient.protocol import MLServiceClient, Predicting
from tests.support.ml import FakeMLClient


def _methods(protocol: type) -> list[str]:
    return [n for n, v in vars(protocol).items() if inspect.isfunction(v) and not n.startswith("_")]


def _parameters(f) -> list[tuple[str, bool]]:
    """(name, has a default) of each parameter after ``self``."""
    return [(p.name, p.default is not p.empty) for p in list(inspect.signature(f).parameters.values())[1:]]


@pytest.mark.parametrize("impl,protocols", [
    (MLClient, (MLServiceClient, Predicting)),
    (FakeMLClient, (MLServiceClient, Predicting)),
    (CachedMLClient, (Predicting,)),
])
def test_each_method_of_the_protocol_is_there_with_its_parameters(impl, protocols):
    for protocol in protocols:
        for name in {m for cls in protocol.__mro__ if cls is not object for m in _methods(cls)}:
            declared = next(getattr(cls, name) for cls in protocol.__mro__ if name in vars(cls))
            wanted, got = _parameters(declared), _parameters(getattr(impl, name))
            # The protocol's parameters come first, by name; anything the implementation adds is optional.
            assert got[:len(wanted)] == wanted, (impl.__name__, name)
            assert all(optional for _, optional in got[len(wanted):]), (impl.__name__, name)


def test_the_stand_in_is_an_ml_client_at_run_time():
    assert isinstance(FakeMLClient(), MLServiceClient)
    assert not isinstance(object(), Predicting)
