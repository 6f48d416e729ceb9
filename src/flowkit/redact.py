"""Mask secret values everywhere flowkit prints or stores anything.

"Over-redaction is reversible by the user but a leaked secret is not": every known secret value
(and its common encodings: URL-encoded, JSON-escaped, base64, and the basic-auth pair) is
replaced by `***`. Values shorter than 4 characters are not registered, to avoid masking
every "1" or "a" in the output.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
_MIN_LEN = 4

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
active = False  # some secret is registered (`has_secrets()`, readable without a call)


def _variants(value: str) -> set[str]:
    out = {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}
    raw = value.encode()
    out.add(base64.b64encode(raw).decode())
    out.add(base64.b64encode(raw + b":").decode())  # Stripe-style basic auth (key as user)
    return {v for v in out if len(v) >= _MIN_LEN}


def register(value: str | None) -> None:
    """Add a secret value to the masking set (no-op for short or empty values)."""
    global _pattern, active
    if not value or len(value) < _MIN_LEN:
        return
    with _lock:
        new = _variants(value) - _secrets
        if not new:
            return
        _secrets.update(new)
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))
        active = True


def clear() -> None:
    """Forget every registered secret (tests)."""
    global _pattern, active
    with _lock:
        _secrets.clear()
        _pattern = None
        active = False


def redact_text(text: str) -> str:
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def redact(value: Any) -> Any:
    """Mask secrets inside a JSON-like value (strings, lists, dicts); keys too."""
    if _pattern is None:
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            redact_text(str(k)) if isinstance(k, str) else k: redact(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def has_secrets() -> bool:
    return active
