"""End-to-end tests of `credo serve`: importing engine.server first makes `credo.v1` importable."""

import engine.server  # noqa: F401
