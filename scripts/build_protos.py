"""Build the Python gRPC code from protos/ into engine/server/gen (never edited by hand).

The generated modules import each other as `credo.v1.*`; engine/server/gen/__init__.py puts
the gen folder on sys.path so those imports resolve without rewriting generated code.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT / "engine" / "server" / "gen"

INIT = '''"""Generated gRPC code (built by scripts/build_protos.py from protos/; do not edit)."""

import sys as _sys
from pathlib import Path as _Path

_here = str(_Path(__file__).resolve().parent)
if _here not in _sys.path:
    _sys.path.insert(0, _here)
'''


def main() -> int:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    (OUT / "__init__.py").write_text(INIT)
    protos = sorted(PROTOS.rglob("*.proto"))
    if not protos:
        print("no .proto files under protos/")
        return 0
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{include}",
        f"--python_out={OUT}",
        f"--grpc_python_out={OUT}",
        f"--pyi_out={OUT}",
        *[str(p.relative_to(PROTOS)) for p in protos],
    ]
    code = protoc.main(args)
    if code != 0:
        print("protoc failed", file=sys.stderr)
        return int(code)
    for folder in {p.parent for p in OUT.rglob("*_pb2.py")}:
        while folder != OUT:
            (folder / "__init__.py").touch()
            folder = folder.parent
    print(f"built {len(protos)} proto file(s) into {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
