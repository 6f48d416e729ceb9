"""A local, stateful stand-in for the QuickBooks Online Accounting API and Intuit's OAuth2 server.

It follows the public references closely enough that the `quickbooks` connector cannot tell it
from the real service for the calls flowkit makes:

* Base path `/v3/company/{realmId}/...`, JSON bodies, `?minorversion=` accepted (1-74 retired
  in August 2025, so it is recorded but not enforced):
  https://developer.intuit.com/app/developer/qbo/docs/learn/explore-the-quickbooks-online-api/minor-versions
* Query endpoint `GET /query?query=select * from Customer where ... STARTPOSITION n MAXRESULTS m`
  (also `POST /query` with an `application/text` body); `count(*)`; no OR; active records only
  unless `Active` is in the WHERE clause; `QueryResponse` with `startPosition`/`maxResults`:
  https://developer.intuit.com/app/developer/qbo/docs/learn/explore-the-quickbooks-online-api/data-queries
  https://developer.intuit.com/hub/blog/2017/02/08/deep-dive-sql-queries/
* `POST /customer`, `GET /customer/{id}`, `GET /item/{id}`, `POST /invoice`, `GET /invoice/{id}`,
  `POST /invoice/{id}/send?sendTo=` (sets `EmailStatus=EmailSent`, `DeliveryInfo`, and
  `BillEmail.Address` to `sendTo`):
  https://developer.intuit.com/app/developer/qbo/docs/workflows/create-an-invoice
  https://pub.dev/documentation/another_quickbooks/latest/services_accounting_invoice_service/InvoiceService/sendInvoice.html
* `requestid` query parameter: a repeated id gets the original response replayed, with no new
  state change (ids up to 50 characters):
  https://blogs.intuit.com/2015/04/06/15346/
* Fault bodies `{"Fault": {"Error": [{"Message", "Detail", "code", "element"}], "type"}, "time"}`;
  6240 Duplicate Name Exists (DisplayName is unique across customers, vendors, employees),
  610 Object Not Found, 2500 Invalid Reference Id, 2020 Required param missing, 4000 query errors,
  401 `AuthenticationFailed; errorCode=003200`, 429 `ThrottleExceeded; errorCode=003001`:
  https://developer.intuit.com/app/developer/qbo/docs/develop/troubleshooting/error-codes
  https://github.com/intuit/QuickBooks-V3-PHP-SDK/issues/241
  https://help.mobius-connect.com/support/solutions/articles/44002519554-message-throttleexceeded-errorcode-003001-statuscode-429
* OAuth2 token endpoint `POST /oauth2/v1/tokens/bearer` (Basic client auth, form body,
  `grant_type=refresh_token`), answering `access_token`, `refresh_token`, `expires_in`,
  `x_refresh_token_expires_in`; errors `{"error": "invalid_grant"}` (400) / `invalid_client` (401).
  Refresh tokens rotate strictly here: each refresh invalidates the one it used:
  https://nango.dev/blog/quickbooks-oauth-refresh-token-invalid-grant
  https://www.useparagon.com/integration-error-solutions/quickbooks-invalid-grant-error

Decisions where the reference is silent: a replayed `requestid` returns whatever the original
write answered (success or business fault) but throttling/auth/injected failures are not stored;
the fault knobs act before the request is processed, except `drop_after_write`.
"""

from __future__ import annotations

from flowkit.sandbox.quickbooks.company import SentInvoice
from flowkit.sandbox.quickbooks.errors import QbFault
from flowkit.sandbox.quickbooks.sandbox import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REALM,
    DEFAULT_REFRESH_TOKEN,
    SANDBOX_KEY,
    TOKEN_PATH,
    QuickBooksSandbox,
    create_app,
)

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_REALM",
    "DEFAULT_REFRESH_TOKEN",
    "SANDBOX_KEY",
    "TOKEN_PATH",
    "QbFault",
    "QuickBooksSandbox",
    "SentInvoice",
    "create_app",
]
