"""Generated protobuf code must match the .proto files (run `make proto` after editing them)."""

from __future__ import annotations

import filecmp
from pathlib import Path

from edgeloop.proto.generate import generate

PROTO_DIR = Path(__file__).resolve().parents[2] / "proto"


def test_generated_code_is_current(tmp_path):
    fresh = generate(tmp_path)
    assert {p.name for p in fresh} == {p.name for p in PROTO_DIR.glob("*_pb2*.py*")}
    stale = [p.name for p in fresh if not filecmp.cmp(p, PROTO_DIR / p.name, shallow=False)]
    assert not stale, f"generated code is older than the .proto files: {stale}; run `make proto`"


def test_generated_code_imports_itself_under_the_package_root():
    grpc_code = (PROTO_DIR / "ml_service_pb2_grpc.py").read_text()
    assert "from edgeloop.proto import ml_service_pb2" in grpc_code
    assert "from edgeloop.proto import events_pb2" in (PROTO_DIR / "ml_service_pb2.py").read_text()
