"""Protobuf wire format pieces the client writes itself: where it joins bytes it already has
(stored events, cached answers) instead of building and serialising messages again."""

from __future__ import annotations


def varint(n: int) -> bytes:
    """``n`` (≥ 0) as a protobuf base-128 varint: a record's tag and its length are written so."""
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
