"""What the Stripe sandbox keeps besides its objects: the applied writes (`Effect`), the fault
knobs (`StripeFaults`) and the saved answers of idempotent requests (`_Saved`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from flowkit.sandbox.stripe.params import JSON

IDEMPOTENCY_TTL = 24 * 3600


@dataclass(frozen=True)
class Effect:
    """One write that was actually applied (for exactly-once assertions)."""

    method: str
    path: str
    idempotency_key: str | None
    params_hash: str
    time: float
    object_id: str


@dataclass
class StripeFaults:
    """Failure knobs. Counted knobs apply to the next matching requests; `match` (e.g.
    "POST /v1/charges") restricts them to requests whose "METHOD /path" starts with it."""

    latency_ms: int = 0
    fail_next: int = 0
    fail_status: int = 503
    retry_after: int | None = 1
    malformed_next: int = 0
    drop_after_apply_next: int = 0
    drop_before_apply_next: int = 0
    match: str | None = None

    def update(self, changes: JSON) -> None:
        """Apply a JSON object of knob values (the `/_sandbox/faults` body)."""
        for name, value in changes.items():
            if name not in self.__dataclass_fields__:
                raise ValueError(f"unknown fault knob {name!r}")
            if name == "match":
                self.match = None if value is None else str(value)
            elif name == "retry_after":
                self.retry_after = None if value is None else int(value)
            else:
                setattr(self, name, int(value))


@dataclass
class _Saved:
    method: str
    path: str
    params_hash: str
    at: float
    status: int = 0
    body: JSON = field(default_factory=dict)
    request_id: str = ""
    done: bool = False
