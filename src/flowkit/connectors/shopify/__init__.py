"""The `shopify` connector: orders, inventory levels and order tags over the Admin GraphQL API.

Every call is a named GraphQL operation POSTed to `{shop_url}/admin/api/{api_version}/graphql.json`
with the `X-Shopify-Access-Token` header, through the shared `HttpClient`.

Rate limits are Shopify's calculated query cost: each answer carries `extensions.cost` with the
bucket's `throttleStatus` (`maximumAvailable`, `currentlyAvailable`, `restoreRate`).
`ShopifyCostLimiter` learns the bucket from every answer and, before the next query, waits
until the bucket holds that query's estimated cost (connection cost = 2 + first × node cost, as
the reference computes it; the last `requestedQueryCost` of the same operation when known).
A query Shopify refused as `THROTTLED` (HTTP 200 with `errors[].extensions.code`) becomes
`ConnectorError(RATE_LIMITED)` with `retry_after` = (requested − available) / restoreRate; it
was not executed, so `maybe_sent` is False. HTTP 429/5xx are classified by the HTTP layer.

`list_orders` is a trigger: orders with a fulfillment status (default `shipped`) updated after
the cursor minus an overlap, `sortKey: UPDATED_AT`, paged with `after: endCursor` (keyset
cursors: an order updated while paging moves to the end, nothing is skipped).

`set_inventory` reads `available` levels by SKU at a location, sends only the SKUs that differ
in `inventorySetQuantities` calls of at most 250 quantities (Shopify's input array limit), with
`compareQuantity` set to the level just read (compare-and-set: a level changed meanwhile is
reported as `COMPARE_QUANTITY_STALE` instead of being overwritten). The mutation is atomic: when
some quantities have user errors, the others are sent again once without them.

Layout: `models` (settings, inputs, outputs), `wire` (the GraphQL documents, IDs, times,
search syntax), `session` (the cost limiter and the GraphQL session, opened and closed per
connection), this module (the actions and the `connector` object).

References followed:
  https://shopify.dev/docs/api/admin-graphql/2025-01/mutations/inventorySetQuantities
  https://shopify.dev/docs/api/admin-graphql/2025-01/queries/orders
  https://shopify.dev/docs/api/admin-graphql/2025-01/queries/productVariants
  https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits
  https://shopify.dev/docs/api/usage/limits  (input arrays at most 250 items)
  https://community.shopify.com/t/throttled/254776  (the THROTTLED error body)
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flowkit.connectors.base import (
    Action,
    CallContext,
    Change,
    Connector,
    ConnectorError,
    Effect,
    ErrorKind,
    Idempotency,
    newest_time,
    parse_time,
)
from flowkit.connectors.http_pages import paginate_cursor
from flowkit.connectors.shopify.models import (
    AddTagsInput,
    AddTagsOutput,
    GetInventoryInput,
    GetInventoryOutput,
    GetOrderInput,
    InventoryUpdate,
    ItemError,
    ListOrdersInput,
    ListOrdersOutput,
    SetInventoryInput,
    SetInventoryOutput,
    ShopifyOrder,
    ShopifySettings,
)
from flowkit.connectors.shopify.session import ShopifyCostLimiter, ShopifySession, _close, _open
from flowkit.connectors.shopify.wire import (
    ADD_TAGS,
    GET_ORDER,
    LIST_ORDERS,
    SET_INVENTORY,
    as_gid,
)
from flowkit.connectors.stock import chunks

__all__ = ["ShopifyCostLimiter", "ShopifySession", "ShopifySettings", "connector"]

DOCS_URL = "https://shopify.dev/docs/api/admin-graphql"
MAX_INPUT = 250  # Shopify: input arrays accept at most 250 items
MUTATION_COST = 10


# ------------------------------------------------------------------------------ actions
class ListOrders(Action[ListOrdersInput, ListOrdersOutput]):
    name = "list_orders"
    description = "Orders with a fulfillment status updated since the cursor (a trigger)."
    effect = Effect.READ
    Input = ListOrdersInput
    Output = ListOrdersOutput

    async def run(
        self, session: ShopifySession, input: ListOrdersInput, call: CallContext
    ) -> ListOrdersOutput:
        node_cost = 3 + input.line_items
        first = min(input.per_page, int((session.limiter.maximum - 2) // node_cost))
        if first < 1:
            raise ConnectorError(
                f"line_items={input.line_items} makes one order cost more than the bucket holds",
                kind=ErrorKind.VALIDATION,
            )
        terms = [f"fulfillment_status:{input.fulfillment_status}"]
        if input.cursor:
            bound = parse_time(input.cursor, "cursor") - timedelta(seconds=input.overlap_seconds)
            terms.append(f"updated_at:>'{bound.strftime('%Y-%m-%dT%H:%M:%SZ')}'")
        variables = {"first": first, "query": " ".join(terms), "lineItems": input.line_items}

        async def fetch(after: str | None) -> tuple[list[Any], str | None]:
            data = await session.graphql(
                "ListOrders", LIST_ORDERS, {**variables, "after": after}, 2 + first * node_cost
            )
            conn = data.get("orders") or {}
            info = conn.get("pageInfo") or {}
            return conn.get("nodes") or [], info.get("endCursor") if info.get(
                "hasNextPage"
            ) else None

        seen: dict[str, ShopifyOrder] = {}
        async for node in paginate_cursor(fetch):
            order = ShopifyOrder.from_api(node)
            seen[order.id] = order  # an order updated while paging comes again: keep the newest
        orders = sorted(seen.values(), key=lambda o: (o.updated_at or "", o.legacy_id))
        cursor = newest_time((o.updated_at for o in orders), "updatedAt", input.cursor)
        return ListOrdersOutput(items=orders, cursor=cursor)


class GetOrder(Action[GetOrderInput, ShopifyOrder]):
    name = "get_order"
    description = "One order by GID or numeric ID."
    effect = Effect.READ
    Input = GetOrderInput
    Output = ShopifyOrder

    async def run(
        self, session: ShopifySession, input: GetOrderInput, call: CallContext
    ) -> ShopifyOrder:
        order_id = checked_gid("Order", input.id)
        variables = {"id": order_id, "lineItems": input.line_items}
        data = await session.graphql("GetOrder", GET_ORDER, variables, 4 + input.line_items)
        if not isinstance(data.get("order"), dict):
            raise ConnectorError(f"Shopify has no order {order_id}", kind=ErrorKind.NOT_FOUND)
        return ShopifyOrder.from_api(data["order"])


def checked_gid(kind: str, value: str) -> str:
    try:
        return as_gid(kind, value)
    except ValueError as exc:
        raise ConnectorError(str(exc), kind=ErrorKind.VALIDATION) from None


class AddOrderTags(Action[AddTagsInput, AddTagsOutput]):
    name = "add_order_tags"
    description = "Add tags to an order (tags already there stay; repeating is harmless)."
    effect = Effect.WRITE
    idempotency = Idempotency.NATURAL
    Input = AddTagsInput
    Output = AddTagsOutput

    async def run(
        self, session: ShopifySession, input: AddTagsInput, call: CallContext
    ) -> AddTagsOutput:
        order_id = checked_gid("Order", input.id)
        variables = {"id": order_id, "tags": list(input.tags)}
        data = await session.graphql("AddTags", ADD_TAGS, variables, MUTATION_COST, write=True)
        result = data.get("tagsAdd") or {}
        problems = result.get("userErrors") or []
        if problems:
            text = "; ".join(str(p.get("message")) for p in problems)
            kind = ErrorKind.NOT_FOUND if "not exist" in text else ErrorKind.VALIDATION
            raise ConnectorError(f"Shopify refused tagsAdd on {order_id}: {text}", kind=kind)
        return AddTagsOutput(id=str((result.get("node") or {}).get("id") or order_id))


class GetInventory(Action[GetInventoryInput, GetInventoryOutput]):
    name = "get_inventory"
    description = "Available quantities of SKUs at a location."
    effect = Effect.READ
    Input = GetInventoryInput
    Output = GetInventoryOutput

    async def run(
        self, session: ShopifySession, input: GetInventoryInput, call: CallContext
    ) -> GetInventoryOutput:
        location = await session.location(input.location_id)
        found = await session.inventory(input.skus, location)
        return GetInventoryOutput(
            location_id=location,
            items=[found[s] for s in input.skus if s in found],
            missing=[s for s in input.skus if s not in found],
        )


class SetInventory(Action[SetInventoryInput, SetInventoryOutput]):
    name = "set_inventory"
    description = "Set available quantities by SKU at a location; writes only the SKUs that differ."
    effect = Effect.WRITE
    idempotency = Idempotency.NATURAL
    Input = SetInventoryInput
    Output = SetInventoryOutput

    async def diff(
        self, session: ShopifySession, input: SetInventoryInput
    ) -> tuple[str, list[InventoryUpdate], int, list[ItemError]]:
        location = await session.location(input.location_id)
        found = await session.inventory([i.sku for i in input.items], location)
        changes: list[InventoryUpdate] = []
        errors: list[ItemError] = []
        unchanged = 0
        for item in input.items:
            level = found.get(item.sku)
            if level is None:
                errors.append(
                    ItemError(sku=item.sku, code="SKU_NOT_FOUND", message="no variant has this SKU")
                )
            elif level.available is None:
                errors.append(
                    ItemError(
                        sku=item.sku,
                        code="ITEM_NOT_STOCKED_AT_LOCATION",
                        message=f"not stocked at {location}",
                    )
                )
            elif level.available == item.quantity:
                unchanged += 1
            else:
                changes.append(
                    InventoryUpdate(
                        sku=item.sku,
                        inventory_item_id=level.inventory_item_id,
                        old=level.available,
                        new=item.quantity,
                    )
                )
        return location, changes, unchanged, errors

    async def plan(
        self, session: ShopifySession, input: SetInventoryInput, call: CallContext
    ) -> list[Change]:
        _, changes, _, _ = await self.diff(session, input)
        return [Change(subject=c.sku, field="stock", old=c.old, new=c.new) for c in changes]

    async def run(
        self, session: ShopifySession, input: SetInventoryInput, call: CallContext
    ) -> SetInventoryOutput:
        location, changes, unchanged, errors = await self.diff(session, input)
        updated: list[InventoryUpdate] = []
        for group in chunks(changes, MAX_INPUT):
            pending = group
            for _attempt in range(2):  # the mutation is atomic: resend once without bad items
                rejected = await self._send(session, input, location, pending, errors)
                if not rejected:
                    updated.extend(pending)
                    break
                pending = [c for i, c in enumerate(pending) if i not in rejected]
                if not pending:
                    break
        return SetInventoryOutput(
            location_id=location, updated=updated, unchanged=unchanged, errors=errors
        )

    async def _send(
        self,
        session: ShopifySession,
        input: SetInventoryInput,
        location: str,
        changes: list[InventoryUpdate],
        errors: list[ItemError],
    ) -> set[int]:
        """Send one mutation; returns the indices of rejected quantities (empty: applied)."""
        quantities = []
        for change in changes:
            entry: dict[str, Any] = {
                "inventoryItemId": change.inventory_item_id,
                "locationId": location,
                "quantity": change.new,
            }
            if input.compare:
                entry["compareQuantity"] = change.old
            quantities.append(entry)
        variables = {
            "input": {
                "name": "available",
                "reason": input.reason,
                "ignoreCompareQuantity": not input.compare,
                "quantities": quantities,
            }
        }
        data = await session.graphql(
            "SetInventory", SET_INVENTORY, variables, MUTATION_COST, write=True
        )
        result = data.get("inventorySetQuantities") or {}
        problems = result.get("userErrors") or []
        rejected: set[int] = set()
        general = []
        for problem in problems:
            path = [str(p) for p in problem.get("field") or []]
            index = (
                int(path[2])
                if len(path) > 2 and path[1] == "quantities" and path[2].isdigit()
                else None
            )
            if index is None or index >= len(changes):
                general.append(problem)
                continue
            rejected.add(index)
            errors.append(
                ItemError(
                    sku=changes[index].sku,
                    code=str(problem.get("code") or "USER_ERROR"),
                    message=str(problem.get("message") or ""),
                )
            )
        if general:
            text = "; ".join(f"{p.get('message')} ({p.get('code')})" for p in general)
            raise ConnectorError(
                f"Shopify refused inventorySetQuantities: {text}", kind=ErrorKind.VALIDATION
            )
        return rejected


connector = Connector(
    "shopify",
    description="Shopify shops over the Admin GraphQL API: orders, inventory, order tags.",
    settings=ShopifySettings,
    actions=[
        ListOrders(),
        GetOrder(),
        AddOrderTags(),
        GetInventory(),
        SetInventory(),
    ],
    open=_open,
    close=_close,
    docs_url=DOCS_URL,
)
