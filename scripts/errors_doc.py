"""Write docs/errors.md from the error-code registry in engine/errors.py (`--check`: fail if stale).

The registry is the source; this page is generated so clients can read every code without Python.
"""

from __future__ import annotations

import sys
from pathlib import Path

from engine.errors import REGISTRY

DOC = Path(__file__).resolve().parent.parent / "docs" / "errors.md"


def render() -> str:
    lines = [
        "# Credo error codes",
        "",
        "Generated from `engine/errors.py` by `python scripts/errors_doc.py`; do not edit by hand.",
        "A gRPC error carries its code as `google.rpc.ErrorInfo.reason` (domain `credo`).",
        "",
        "| code | gRPC status | HTTP status | meaning |",
        "|---|---|---|---|",
    ]
    for entry in REGISTRY.values():
        lines.append(f"| `{entry.name}` | {entry.grpc_status} | {entry.http_status} | {entry.meaning} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not DOC.exists() or DOC.read_text(encoding="utf-8") != text:
            print(f"{DOC} is stale: run python scripts/errors_doc.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
