"""A local, stateful stand-in for the Shopify Admin GraphQL API (`/admin/api/<v>/graphql.json`).

This is a fake, not a GraphQL engine: it recognises the operations flowkit's connector sends, by
operation name (`ListOrders`, `GetOrder`, `VariantsBySku`, `SetInventory`, `ListLocations`,
`AddTags`), reads their variables, and answers with the response shapes of the reference:

* auth by `X-Shopify-Access-Token`; a wrong or missing token is a 401 with
  `{"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}`;
* connections with `nodes` (and `edges { cursor node }` when the query asks for them) and
  `pageInfo { hasNextPage endCursor }`; `first` is 1..250;
* search syntax in `query:` arguments: `fulfillment_status:shipped updated_at:>'2025-01-01'`
  for orders, `sku:A OR sku:B` for product variants;
* `inventorySetQuantities` (2025-01 input: `name`, `reason`, `ignoreCompareQuantity`,
  `quantities[{inventoryItemId, locationId, quantity, compareQuantity}]`), atomic, with
  `userErrors { field message code }` (`COMPARE_QUANTITY_STALE`, `INVALID_INVENTORY_ITEM`, ...);
  input arrays over 250 items fail with `MAX_INPUT_SIZE_EXCEEDED`;
* calculated query cost: every answer carries `extensions.cost` {requestedQueryCost,
  actualQueryCost, throttleStatus {maximumAvailable, currentlyAvailable, restoreRate}} from a
  leaky bucket (1000 points, 50/s restore by default; `bucket_size`, `restore_rate`, an injectable
  `clock`); over budget the answer is 200 with `errors: [{message: "Throttled", extensions:
  {code: "THROTTLED"}}]`; a query costing more than the bucket is `MAX_COST_EXCEEDED`.
  Costs follow the reference's rules (object 1, connection 2 + first × node cost, mutation 10).

An unknown operation is a 400 naming the ones this sandbox implements. `faults` (shared with
the WooCommerce sandbox) injects 429s, 503s, malformed bodies, latency and dropped connections.

References followed:
  https://shopify.dev/docs/api/admin-graphql/2025-01/mutations/inventorySetQuantities
  https://shopify.dev/docs/api/admin-graphql/2025-01/enums/InventorySetQuantitiesUserErrorCode
  https://shopify.dev/docs/api/admin-graphql/2025-01/queries/orders
  https://shopify.dev/docs/api/admin-graphql/2025-01/enums/OrderDisplayFulfillmentStatus
  https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits  (cost, throttleStatus)
  https://shopify.dev/docs/api/usage/limits  (input arrays at most 250, pagination)
  https://community.shopify.com/t/throttled/254776  (the THROTTLED error body)
"""

from flowkit.sandbox.shopify.server import ShopifyServer
from flowkit.sandbox.shopify.wire import ShopifyCall

__all__ = ["ShopifyCall", "ShopifyServer"]
