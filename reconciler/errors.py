"""The project's error tree. Every failure a user can see is one of these.

    ReconcilerError                      exit code 1 unless a subclass says otherwise
    ├── ManifestError                    one or more Diagnostics (file:line:col: message (hint))
    ├── ConfigError                      bad reconciler.yaml, missing credentials, bad URL
    ├── ApiError                         a vendor call failed: method, path, status, trackingId
    │   ├── ApiAuthError                 401/403 that re-minting a token did not cure
    │   ├── TlsConfigError               the TLS handshake or client certificate was refused (never retried)
    │   ├── AmbiguousWriteError          a write whose outcome is unknown: read live state before any re-send
    │   ├── TicketExistsError            SEI answered 409 for a tradeTicketId
    │   └── NotFoundError                404
    ├── LiveStateError                   live state does not fit the manifests (e.g. registration missing in Orion)
    ├── PlanFileError                    a saved plan is unreadable, stale or expired
    ├── PlanBlockedError                 apply refuses: conflicts, --max-changes, no approval
    ├── LockError                        another apply holds the workspace lock
    └── StateBackendError                the state backend (SQLite file or PostgreSQL) failed

A write's outcome is *refused* only when `ApiError.refused` is set by the HTTP layer (the request
never left, or the server said no before acting); every other failure of a write is in doubt.

Messages say what failed, where, and what to try next. Nothing here may carry a secret:
vendor bodies are quoted only up to BODY_EXCERPT_LIMIT, after redaction by the caller.
This module imports nothing of ours, so every layer can raise these.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BODY_EXCERPT_LIMIT",
    "AmbiguousWriteError",
    "ApiAuthError",
    "ApiError",
    "ConfigError",
    "Diagnostic",
    "LiveStateError",
    "LockError",
    "ManifestError",
    "NotFoundError",
    "PlanBlockedError",
    "PlanFileError",
    "ReconcilerError",
    "StateBackendError",
    "TicketExistsError",
    "TlsConfigError",
]

# Vendor error bodies can be large HTML pages or echo whole payloads; 300 characters keeps the
# useful head (code, message) and keeps logs readable.
BODY_EXCERPT_LIMIT = 300


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem in a manifest, sortable by file and position."""

    file: str
    line: int
    col: int
    message: str
    hint: str = ""

    def __str__(self) -> str:
        tail = f" ({self.hint})" if self.hint else ""
        return f"{self.file}:{self.line}:{self.col}: {self.message}{tail}"


class ReconcilerError(Exception):
    """Root of every error this project raises on purpose."""

    exit_code = 1


class ManifestError(ReconcilerError):
    """The manifests are invalid; carries every Diagnostic found, sorted."""

    def __init__(self, diagnostics: list[Diagnostic] | tuple[Diagnostic, ...]):
        self.diagnostics = tuple(sorted(diagnostics))
        files = len({d.file for d in self.diagnostics})
        n = len(self.diagnostics)
        super().__init__(f"{n} error{'s' * (n != 1)} in {files} file{'s' * (files != 1)}")


class ConfigError(ReconcilerError):
    """Configuration or credentials are missing or wrong."""


class ApiError(ReconcilerError):
    """A vendor API call failed. Carries enough context to find it in the vendor's logs."""

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        status: int | None = None,
        tracking_id: str | None = None,
        body_excerpt: str = "",
        transient: bool = False,
        refused: bool = False,
    ):
        self.method = method
        self.path = path
        self.status = status
        self.tracking_id = tracking_id
        self.body_excerpt = body_excerpt[:BODY_EXCERPT_LIMIT]
        self.transient = transient
        # True only where the server surely did not act on a write (it never left, or was refused
        # before being read): the one case in which a write may be called *refused*.
        self.refused = refused
        where = f"{method} {path}".strip()
        parts = [f"{where}: {message}" if where else message]
        if status is not None:
            parts.append(f"HTTP {status}")
        if tracking_id:
            parts.append(f"trackingId {tracking_id}")
        if self.body_excerpt:
            parts.append(f"body: {self.body_excerpt!r}")
        super().__init__("; ".join(parts))


class ApiAuthError(ApiError):
    """Credentials were refused even after minting a fresh token."""


class TlsConfigError(ApiError, ConfigError):
    """The server refused the TLS handshake or client certificate: fix configuration, do not retry."""


class AmbiguousWriteError(ApiError):
    """A write was sent but its outcome is unknown. Read live state before any re-send."""


class TicketExistsError(ApiError):
    """SEI already holds this tradeTicketId (HTTP 409)."""


class NotFoundError(ApiError):
    """The vendor answered 404."""


class LiveStateError(ReconcilerError):
    """Live state cannot be reconciled with the manifests as they stand. Where the cause is a declaration,
    each one is a Diagnostic at its file and line, as validate's are, listed under the message."""

    def __init__(self, message: str, diagnostics: list[Diagnostic] | tuple[Diagnostic, ...] = ()):
        self.diagnostics = tuple(sorted(diagnostics))
        super().__init__("\n".join([message, *(f"  {d}" for d in self.diagnostics)]))


class PlanFileError(ReconcilerError):
    """A saved plan cannot be used: unreadable, stale or expired."""


class PlanBlockedError(ReconcilerError):
    """Apply refuses to write: conflicts planned, too many changes, or no approval."""


class LockError(ReconcilerError):
    """Another apply holds this workspace's lock."""


class StateBackendError(ReconcilerError):
    """The journal's store failed or cannot be reached; the message never carries its password."""
