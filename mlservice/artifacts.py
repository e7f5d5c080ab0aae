"""Reading a model version's stored artifact: ``.npz`` arrays, loaded without pickle.

Every model stores its arrays with numpy's ``savez`` (compressed or not) and a
``feature_names`` array. Bytes that cannot be read back as such an artifact (empty,
truncated, corrupt, made for other features, an array missing) are ``ModelArtifactUnreadable``
naming the version, never numpy's, zipfile's or zlib's own error: the RPCs then answer
FAILED_PRECONDITION / PERMANENT with the message instead of an INTERNAL error that hides it,
and a training job fails with it as its reason.
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np

from edgeloop.core.errors import ModelArtifactUnreadable


class ArtifactArrays(dict[str, np.ndarray]):
    """The arrays of one artifact by name; an array it lacks is ``ModelArtifactUnreadable``."""

    def __init__(self, what: str, arrays: dict[str, np.ndarray]) -> None:
        super().__init__(arrays)
        self.what = what

    def __missing__(self, name: str) -> np.ndarray:
        raise ModelArtifactUnreadable(f"{self.what}: artifact has no array {name!r}")


def read_arrays(data: bytes, model: str, version: str, feature_names: Sequence[str]) -> ArtifactArrays:
    """All arrays of the artifact ``data`` of ``model``'s ``version`` ("" if unknown), checked
    to be made for ``feature_names``; every error's message starts with what it is
    ("strategy model strategy-v3", also the result's ``what``)."""
    what = f"{model} model {version}".rstrip()
    # Bytes in memory, no I/O: whatever reading them raises says they are no artifact. Damaged
    # bytes raise many kinds (a byte-flipping fuzz of both models' artifacts met EOFError,
    # BadZipFile, zlib.error, ValueError, NotImplementedError for a "compression method",
    # RuntimeError for an "encrypted" member, tokenize's TokenError from a .npy header).
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = ArtifactArrays(what, {k: z[k] for k in z.files})
    except Exception as exc:  # noqa: BLE001 - each one is reported, by type and message, as unreadable
        raise ModelArtifactUnreadable(f"{what}: artifact of {len(data or b'')} bytes cannot be read "
                                      f"({type(exc).__name__}: {exc})") from exc
    if tuple(str(x) for x in np.ravel(arrays["feature_names"])) != tuple(feature_names):
        raise ModelArtifactUnreadable(f"{what}: artifact was made for other features")
    return arrays
