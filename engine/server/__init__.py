"""gRPC transport for Credo: converters, error mapping, servicer, worker and supervisor processes.

Importing this package puts the generated `credo.v1` modules (engine/server/gen) on sys.path.
"""

import engine.server.gen  # noqa: F401
