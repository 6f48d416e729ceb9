"""Fault answers of the QuickBooks sandbox: the error codes it uses, with their HTTP status,
Message and fault type, and `QbFault`, which renders the `{"Fault": ...}` body."""

from __future__ import annotations

from typing import Any

_VF = "ValidationFault"
_FAULTS: dict[str, tuple[int, str, str]] = {
    "610": (400, "Object Not Found", _VF),
    "2010": (400, "Request has invalid or unsupported property", _VF),
    "2020": (400, "Required param missing, need to supply the required value for the API", _VF),
    "2050": (400, "String length is either shorter or longer than supported by specification", _VF),
    "2500": (400, "Invalid Reference Id", _VF),
    "4000": (400, "Error parsing query", _VF),
    "4001": (400, "Invalid query", _VF),
    "6000": (400, "A business validation error has occurred while processing your request", _VF),
    "6070": (400, "Business Validation Error", _VF),
    "6140": (400, "Duplicate Document Number Error", _VF),
    "6240": (400, "Duplicate Name Exists Error", _VF),
    "3001": (429, "message=ThrottleExceeded; errorCode=003001; statusCode=429", "SERVICE"),
    "3100": (403, "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
             "AUTHORIZATION"),
    "3200": (401, "message=AuthenticationFailed; errorCode=003200; statusCode=401",
             "AUTHENTICATION"),
    "10000": (503, "An application error has occurred while processing your request",
              "SystemFault"),
}  # fmt: skip


class QbFault(Exception):
    """A Fault answer: HTTP status, QuickBooks error code, Message, Detail and fault type."""

    def __init__(self, code: str, detail: str, *, status: int | None = None) -> None:
        default_status, message, kind = _FAULTS[code]
        super().__init__(message)
        self.status = status or default_status
        self.code, self.message, self.detail, self.kind = code, message, detail, kind

    def body(self, time: str) -> dict[str, Any]:
        error = {"Message": self.message, "Detail": self.detail, "code": self.code, "element": ""}
        return {"Fault": {"Error": [error], "type": self.kind}, "time": time}
