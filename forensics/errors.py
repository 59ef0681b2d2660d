"""Errors a user can act on.

Every error that reaches the command line is a :class:`ForensicsError`: the CLI prints its
message as one line (naming the file, key or row at fault) and exits with status 2, without
a traceback. Anything else is a bug and keeps its traceback.
"""


class ForensicsError(Exception):
    """Base class of the errors caused by bad input (a config, a manifest, a file)."""


class ConfigError(ForensicsError):
    """A config file or override is malformed: unknown key, wrong type, missing value."""


class ManifestError(ForensicsError):
    """A crop manifest is malformed: missing column, bad value, missing file."""
