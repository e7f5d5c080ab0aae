"""Generated protobuf code must match the .proto files (run `make proto` after editing them)."""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ["proto/events.proto", "proto/ml_service.proto"]


def test_generated_code_is_current(tmp_path):
    (tmp_path / "proto").mkdir()
    for p in PROTOS:
        shutil.copy(ROOT / p, tmp_path / p)
    include = str(Path(protoc.__file__).parent / "_proto")
    rc = protoc.main(["protoc", f"-I{tmp_path}", f"-I{include}", f"--python_out={tmp_path}", f"--pyi_out={tmp_path}",
                      f"--grpc_python_out={tmp_path}", *[str(tmp_path / p) for p in PROTOS]])
    assert rc == 0
    stale = [
        f.name
        for f in sorted((tmp_path / "proto").glob("*_pb2*.py*"))
        if not filecmp.cmp(f, ROOT / "proto" / f.name, shallow=False)
    ]
    assert not stale, f"generated code is older than the .proto files: {stale}; run `make proto`"
