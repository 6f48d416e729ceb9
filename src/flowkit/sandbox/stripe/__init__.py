"""A contract-faithful, in-memory stand-in for the Stripe API (charges, payment intents,
customers, refunds) for `flowkit sandbox` and the tests.

References followed (docs.stripe.com):
* Authentication, secret key as HTTP Basic user or Bearer token: https://docs.stripe.com/api/authentication
* Form-encoded bodies with nested keys (`metadata[k]=v`, `expand[]=x`): https://docs.stripe.com/api
* Idempotent requests: https://docs.stripe.com/api/idempotent_requests and
  https://docs.stripe.com/idempotency — the status and body of the first request whose endpoint
  execution began are saved per key and replayed (also errors, also 500s); a repeat with other
  parameters or another endpoint is an `idempotency_error` (400); a repeat while the first is
  still executing is a 409; parameter-validation failures are not saved; keys are at most 255
  characters and are pruned after 24 hours; GET requests ignore the header.
* Pagination, newest first, `limit` 1-100 (default 10), `starting_after` / `ending_before`
  mutually exclusive: https://docs.stripe.com/api/pagination
* Errors, `{"error": {"type", "code", "message", "param"}}`, 402 for card errors, 409 for
  idempotency conflicts: https://docs.stripe.com/api/errors
* Charges (object, create, retrieve, update, list with `created[gt|gte|lt|lte]`, `customer`,
  `payment_intent`): https://docs.stripe.com/api/charges
* Customers: https://docs.stripe.com/api/customers ; PaymentIntents (create with `confirm`,
  confirm, update, list): https://docs.stripe.com/api/payment_intents ; Refunds:
  https://docs.stripe.com/api/refunds
* Metadata merges on update; an empty value unsets a key, `metadata=` clears all:
  https://docs.stripe.com/metadata
* Expanding responses (`expand[]=customer`, `expand[]=data.customer`): https://docs.stripe.com/expand

Test cards (https://docs.stripe.com/testing): `pm_card_visa`, `tok_visa`, `pm_card_mastercard`
succeed; `pm_card_chargeDeclined`, `tok_chargeDeclined` and
`pm_card_chargeDeclinedInsufficientFunds` decline with 402.

Decisions where the reference is silent: unknown parameters are rejected like Stripe does
("Received unknown parameter"); the fault knobs (`StripeFaults`, also `POST /_sandbox/faults`)
act before anything is processed except `drop_after_apply` (the write is applied and its
idempotent result saved, then the connection is closed without an answer) and `malformed`
(processed normally, body truncated). The drop knobs only affect POST requests, and
`drop_after_apply` only one that applied a write.

Control endpoints (no authentication, not part of Stripe): `GET|POST|DELETE /_sandbox/faults`
(read, change or reset the knobs), `GET /_sandbox/ledger` (applied writes), `GET
/_sandbox/state` (counts).
"""

from __future__ import annotations

from flowkit.sandbox.stripe.params import StripeError, decode_form
from flowkit.sandbox.stripe.records import Effect, StripeFaults
from flowkit.sandbox.stripe.sandbox import DEFAULT_API_KEY, StripeSandbox

__all__ = [
    "DEFAULT_API_KEY",
    "Effect",
    "StripeError",
    "StripeFaults",
    "StripeSandbox",
    "decode_form",
]
