"""Generate the protobuf/gRPC code (with .pyi stubs) of proto/*.proto (`make proto`).

The .proto files import each other as ``edgeloop/proto/…``, so the generated modules import
each other as ``edgeloop.proto.…``. protoc maps import paths to folders, so the sources are
staged under ``edgeloop/proto/`` in a scratch folder and the output copied back beside them.
Needs grpcio-tools (a dev dependency).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTOS = ("events.proto", "ml_service.proto")


def generate(out_dir: Path) -> list[Path]:
    """Write the generated files of PROTOS into ``out_dir``; returns their paths."""
    # Here, not at the top: grpcio-tools is a development dependency (`make proto`).
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as scratch:
        staged = Path(scratch) / "edgeloop" / "proto"
        staged.mkdir(parents=True)
        for name in PROTOS:
            shutil.copy(HERE / name, staged / name)
        include = Path(protoc.__file__).parent / "_proto"
        rc = protoc.main(["protoc", f"-I{scratch}", f"-I{include}", f"--python_out={scratch}",
                          f"--pyi_out={scratch}", f"--grpc_python_out={scratch}",
                          *[str(staged / name) for name in PROTOS]])
        if rc != 0:
            raise SystemExit(f"protoc failed ({rc})")
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for path in sorted(staged.glob("*_pb2*.py*")):
            written.append(Path(shutil.copy(path, out_dir / path.name)))
        return written


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(path)
