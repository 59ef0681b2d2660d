"""forensics: a research codebase for face forgery detection.

The core package, grouped by layer: foundation (``config``, ``errors``, ``atomic``,
``distributed``, ``registry``, ``models``, ``cli``), ``media`` (pixels in, faces out), ``data``
(crops in, batches out), ``training`` (schema, session, engine, loop, tasks, metrics,
checkpoints, run logging) and ``commands``. Plug-in packages build on it and register their
models, tasks and commands through entry points; see ``docs/architecture.md``.
"""

__version__ = "0.1.0"
