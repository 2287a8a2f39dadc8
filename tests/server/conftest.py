"""Unit tests of the gRPC layer: importing engine.server first makes `credo.v1` importable."""

import engine.server  # noqa: F401
