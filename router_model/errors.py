"""The exception tree of tierwise.

Every error the project raises on purpose is a ``TierwiseError``; callers (the
CLI, the gRPC interceptor) map these classes to exit codes and status codes in
one place each, and treat anything else as a bug::

    TierwiseError
    ├── InvalidInputError      a request or a data file is malformed
    │   └── DataFileError      ... at a known file and line
    ├── ConfigError            a tiers file or option is inconsistent
    ├── ArtifactError          a router artifact is missing, truncated or tampered
    └── NotReadyError          no router is loaded yet
"""

from __future__ import annotations


class TierwiseError(Exception):
    """Base class of every error tierwise raises deliberately."""


class InvalidInputError(TierwiseError, ValueError):
    """Input that can never succeed; ``field`` names the offending part."""

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        prefix = f"field '{field}': " if field else ""
        super().__init__(prefix + message)


class DataFileError(InvalidInputError):
    """A malformed record in a file, located by path and 1-based line number."""

    def __init__(self, path: str, line: int | None, message: str, field: str | None = None) -> None:
        super().__init__(message, field)
        self.path = path
        self.line = line
        where = f"{path}:{line}" if line is not None else path
        self.args = (f"{where}: {self.args[0]}",)


class ConfigError(TierwiseError, ValueError):
    """A configuration (tiers file, option combination) that cannot be used."""


class ArtifactError(TierwiseError):
    """A router artifact that fails validation; the message names the file."""


class NotReadyError(TierwiseError):
    """Raised when a decision is requested before a router is loaded."""
