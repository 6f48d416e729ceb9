"""The flowkit exception tree and the exit codes it maps to.

    FlowkitError                     anything flowkit expects and can explain in one line
     ├── UsageError                  bad command-line use (exit 2)
     ├── RecipeInvalid               a recipe failed to load or validate; carries Problems (exit 2
     │                               from `run`, 1 from `validate`, which reports problems as data)
     ├── PluginError                 a connector plugin could not be loaded (names the distribution)
     ├── ConnectorError              an action failed; classified by ErrorKind (see below)
     ├── ExpressionError             an expression failed at run time (bad type, missing key)
     ├── StateError                  the state store cannot be opened, migrated or written
     │    └── LockHeld               another run holds the recipe's lock (exit 5)
     └── StepFailed                  an item's step failed for good (after retries)

Connectors classify their failures with `ErrorKind`; only TRANSIENT, RATE_LIMITED and TIMEOUT
are retried by default. Context is added as an error rises (`with_context`): the connector says
"HTTP 503 from GET /v1/charges", the engine prefixes step id, item key and attempt.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class ExitCode(enum.IntEnum):
    """Stable, documented process exit codes (see docs/cli.md)."""

    OK = 0
    FAILED = 1  # `run`: the run failed; `validate`: problems were found
    INVALID = 2  # invalid recipe or command-line usage
    INTERNAL = 3  # a bug in flowkit: the traceback is written to a log file
    PARTIAL = 4  # some items failed, the others succeeded
    LOCKED = 5  # another run of the recipe holds the lock; nothing was done
    INTERRUPTED = 130  # Ctrl-C


class ErrorKind(str, enum.Enum):
    """How a connector classifies a failure; drives retries and on-error routing."""

    TRANSIENT = "transient"  # 5xx, connection reset before sending, DNS hiccup
    RATE_LIMITED = "rate_limited"  # 429 or a provider's throttling signal
    TIMEOUT = "timeout"  # no answer in time
    AUTH = "auth"  # 401/403, bad or expired credentials after a refresh
    VALIDATION = "validation"  # 400/422: the request is wrong, retrying will not help
    CONFLICT = "conflict"  # 409: already exists / idempotency key reused with other params
    NOT_FOUND = "not_found"  # 404
    PERMANENT = "permanent"  # anything else that will not get better by retrying

    @property
    def retryable(self) -> bool:
        return self in RETRYABLE_BY_DEFAULT


RETRYABLE_BY_DEFAULT = frozenset({ErrorKind.TRANSIENT, ErrorKind.RATE_LIMITED, ErrorKind.TIMEOUT})


class FlowkitError(Exception):
    """Base of every error flowkit expects; `str()` is a one-line, user-facing message."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def with_context(self, prefix: str) -> FlowkitError:
        """Prefix the message with where it happened (e.g. "step invoice, item ch_1")."""
        self.message = f"{prefix}: {self.message}"
        self.args = (self.message,)
        return self


class UsageError(FlowkitError):
    exit_code = ExitCode.INVALID


@dataclass(frozen=True, order=True)
class Problem:
    """One validation finding, printed as `file:line:col: message` plus an optional hint."""

    file: str
    line: int  # 1-based
    col: int  # 1-based
    message: str
    hint: str | None = field(default=None, compare=False)
    rule: str = field(default="recipe", compare=False)

    def format(self) -> str:
        text = f"{self.file}:{self.line}:{self.col}: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class RecipeInvalid(FlowkitError):
    exit_code = ExitCode.INVALID

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        first = self.problems[0].format().splitlines()[0] if self.problems else "invalid recipe"
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(first + more)


class PluginError(FlowkitError):
    exit_code = ExitCode.INVALID


class ExpressionError(FlowkitError):
    pass


class StateError(FlowkitError):
    pass


class LockHeld(StateError):
    exit_code = ExitCode.LOCKED


class ConnectorError(FlowkitError):
    """An action failed. `kind` decides retrying; `maybe_sent` marks an unknown outcome.

    `maybe_sent=True` means the request may have reached the remote side (a timeout or a
    dropped connection after the body was written): a write may have happened, so the engine
    repeats it only with the same idempotency key, or records the outcome as unknown.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind = ErrorKind.PERMANENT,
        status: int | None = None,
        retry_after: float | None = None,
        maybe_sent: bool = False,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after
        self.maybe_sent = maybe_sent


class StepFailed(FlowkitError):
    """A step failed for good for one item; carries the last connector error's kind."""

    def __init__(self, message: str, *, kind: ErrorKind | None = None) -> None:
        super().__init__(message)
        self.kind = kind
