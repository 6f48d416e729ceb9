"""A local, stateful stand-in for the WooCommerce REST API v3 (`/wp-json/wc/v3`).

It follows the public reference for the parts flowkit uses, so the connector can be tested over
real HTTP and the sandbox can demo recipes with no shop anywhere:

* auth: HTTP Basic with the consumer key/secret, or `consumer_key`/`consumer_secret` query
  parameters; errors `woocommerce_rest_authentication_error` ("Consumer key is invalid.",
  "Consumer secret is invalid.") and `woocommerce_rest_cannot_view` when none is sent (401);
* `GET orders` (`status`, `after`/`before`, `modified_after`/`modified_before`, `page`,
  `per_page` 1..100, `orderby`, `order`, `include`), `GET/PUT/POST orders/{id}`;
* `GET products` (`sku` comma list, `include`, paging), `GET/PUT products/{id}`,
  `POST products/batch` (at most 100 items, else 413 `woocommerce_rest_request_entity_too_large`
  as in `WC_REST_Controller::check_batch_limit`; per-item errors inside the response);
* `GET products/reviews` (`product`, `reviewer_email`, `status`, paging), `POST products/reviews`;
* collections carry `X-WP-Total`, `X-WP-TotalPages` and a `Link` header (`rel="next"`/`"prev"`);
* errors are WordPress REST errors: `{"code": ..., "message": ..., "data": {"status": N}}`.

The site timezone is UTC, so `date_x` and `date_x_gmt` are equal. Real WooCommerce has no rate
limit by default; `faults` adds 429s, 503s, malformed bodies, latency and dropped connections for
tests (see `Faults`).

References followed:
  https://woocommerce.github.io/woocommerce-rest-api-docs/  (pagination, errors, auth)
  https://developer.woocommerce.com/docs/apis/rest-api/v3/product-reviews/
  https://developer.woocommerce.com/docs/apis/rest-api/  (orders, products, batch)
  woocommerce/woocommerce: includes/rest-api/Controllers/Version3/class-wc-rest-controller.php
  (batch limit 100, per-item error shape) and class-wc-rest-authentication.php (401 messages)
"""

from __future__ import annotations

from flowkit.sandbox.faults import Faults
from flowkit.sandbox.woocommerce.server import WooCommerceServer
from flowkit.sandbox.woocommerce.wire import BASE, Received

__all__ = ["BASE", "Faults", "Received", "WooCommerceServer"]
