"""Both models' stored artifacts read back through one reader (``mlservice.artifacts``): bytes
that are no artifact of this code are ``ModelArtifactUnreadable`` naming the version, never
numpy's, zipfile's or zlib's own error."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

from edgeloop.core.errors import ModelArtifactUnreadable
from edgeloop.mlservice.features import FEATURE_NAMES as OUTCOME_FEATURES
from edgeloop.mlservice.outcome_model import OutcomeModel
from edgeloop.mlservice.strategy_generation import RISK_LIMITS, random_params
from edgeloop.mlservice.strategy_model import StrategyModel, encode


def _outcome_artifact() -> bytes:
    rng, f = np.random.default_rng(0), len(OUTCOME_FEATURES)
    return OutcomeModel(mean=rng.normal(size=f), scale=rng.random(f) + 0.5, coef=rng.normal(size=(3, f)),
                        intercept=rng.normal(size=3)).to_bytes()


def _strategy_artifact() -> bytes:
    rng = np.random.default_rng(0)
    params = [random_params(rng, RISK_LIMITS["high"]) for _ in range(100)]
    y = encode(params)[:, 0]
    return StrategyModel.fit(params, np.column_stack([y, y / 2, 1 - y, y / 3, y])).to_bytes()


# model → (its class, a real artifact of it, an array only it has)
MODELS = {
    "outcome": (OutcomeModel, _outcome_artifact, "coef"),  # np.savez: arrays stored as they are
    "strategy": (StrategyModel, _strategy_artifact, "t_value"),  # np.savez_compressed
}


def _artifact_without(data: bytes, name: str, **replaced) -> bytes:
    with np.load(io.BytesIO(data)) as z:
        arrays = {k: z[k] for k in z.files if k != name}
    buf = io.BytesIO()
    np.savez_compressed(buf, **{**arrays, **replaced})
    return buf.getvalue()


def _corrupt(data: bytes) -> bytes:
    flipped = bytearray(data)
    for i in range(len(data) // 3, len(data) // 3 + 64):  # inside the first array's data
        flipped[i] ^= 0xFF
    return bytes(flipped)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("damage, says", [
    (lambda data, only: b"", "0 bytes cannot be read (EOFError"),  # numpy's own EOFError before
    (lambda data, only: data[:len(data) // 2], "cannot be read (BadZipFile"),  # truncated
    (lambda data, only: _corrupt(data), "cannot be read"),
    (lambda data, only: b"not an artifact", "cannot be read (ValueError"),
    (lambda data, only: _artifact_without(data, only), "no array '{only}'"),
    (lambda data, only: _artifact_without(data, "feature_names", feature_names=np.array(["x"])), "other features"),
])
def test_an_unreadable_artifact_is_a_permanent_error_naming_the_version(model, damage, says):
    cls, artifact, only = MODELS[model]
    with pytest.raises(ModelArtifactUnreadable, match=f"^{model} model {model}-v1: .*{re.escape(says.format(only=only))}"):
        cls.from_bytes(damage(artifact(), only), f"{model}-v1")


@pytest.mark.parametrize("model", MODELS)
def test_no_truncation_or_flipped_byte_escapes_as_another_error(model):
    """Damage anywhere: every truncation (by steps) and random flipped bytes. Either the model
    loads (a flipped byte in a field nothing checks) or the error is ModelArtifactUnreadable;
    such a fuzz once met NotImplementedError, RuntimeError and tokenize's TokenError."""
    cls, artifact, _ = MODELS[model]
    data, rng = artifact(), np.random.default_rng(1)
    damaged = [data[:n] for n in range(0, len(data), max(1, len(data) // 300))]
    for _ in range(600):
        flipped = bytearray(data)
        for i in rng.integers(0, len(data), rng.integers(1, 4)):
            flipped[i] ^= int(rng.integers(1, 256))
        damaged.append(bytes(flipped))
    refused = 0
    for d in damaged:
        try:
            cls.from_bytes(d, "v1")
        except ModelArtifactUnreadable:
            refused += 1
    assert refused > 0.9 * len(damaged)


@pytest.mark.parametrize("model", MODELS)
def test_an_intact_artifact_still_reads(model):
    cls, artifact, _ = MODELS[model]
    data = artifact()
    again = cls.from_bytes(data, "v1").to_bytes()  # not byte-equal: the zip members carry the time written
    with np.load(io.BytesIO(data)) as before, np.load(io.BytesIO(again)) as after:
        assert sorted(before.files) == sorted(after.files)
        for name in before.files:
            np.testing.assert_array_equal(before[name], after[name])
