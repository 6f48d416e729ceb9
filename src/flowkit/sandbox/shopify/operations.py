"""The GraphQL operations the Shopify sandbox answers, per resource: orders (`ListOrders`,
`GetOrder`, `AddTags`) and inventory (`ListLocations`, `VariantsBySku`, `SetInventory`). Each
returns its `data` and its actual query cost."""

from __future__ import annotations

from typing import Any

from flowkit.sandbox.shopify.search import matches_order, parse_sku_query
from flowkit.sandbox.shopify.shop import _Shop
from flowkit.sandbox.shopify.wire import (
    MAX_INPUT,
    MUTATION_COST,
    GraphQLError,
    connection_shape,
    decode_cursor,
    encode_cursor,
    gid,
    iso,
    user_error,
)

REASONS = frozenset(
    {
        "correction",
        "cycle_count_available",
        "damaged",
        "movement_created",
        "movement_updated",
        "movement_received",
        "movement_canceled",
        "other",
        "promotion",
        "quality_control",
        "received",
        "reservation_created",
        "reservation_deleted",
        "reservation_updated",
        "restock",
        "safety_stock",
        "shrinkage",
    }
)


class _Operations(_Shop):
    """The resolvers, by operation; `ShopifyServer._operations` maps names to them."""

    # ------------------------------------------------------------------ orders

    def _order_node(self, order: dict[str, Any], lines: int) -> dict[str, Any]:
        node = {k: v for k, v in order.items() if k != "lineItems"}
        node["lineItems"] = {"nodes": order["lineItems"][: max(lines, 0)]}
        return node

    def _list_orders(self, query: str, variables: dict[str, Any]) -> tuple[Any, int]:
        first, lines = variables["first"], variables.get("lineItems", 0)
        orders = sorted(self.orders.values(), key=lambda o: (o["updatedAt"], o["id"]))
        orders = [o for o in orders if matches_order(o, str(variables.get("query") or ""))]
        after = variables.get("after")
        if after:
            key = decode_cursor(after)
            orders = [o for o in orders if (o["updatedAt"], o["id"]) > key]
        page = orders[:first]
        nodes = [self._order_node(o, lines) for o in page]
        cursors = [encode_cursor((o["updatedAt"], o["id"])) for o in page]
        actual = 2 + sum(3 + len(n["lineItems"]["nodes"]) for n in nodes)
        connection = connection_shape(query, nodes, cursors, has_next=len(orders) > first)
        return {"orders": connection}, actual

    def _get_order(self, query: str, variables: dict[str, Any]) -> tuple[Any, int]:
        order = self.orders.get(str(variables.get("id")))
        if order is None:
            return {"order": None}, 1
        node = self._order_node(order, variables.get("lineItems", 0))
        return {"order": node}, 4 + len(node["lineItems"]["nodes"])

    def _add_tags(self, query: str, variables: dict[str, Any]) -> tuple[Any, int]:
        order = self.orders.get(str(variables.get("id")))
        raw = variables.get("tags") or []
        tags = [t.strip() for t in (raw.split(",") if isinstance(raw, str) else raw) if t.strip()]
        if order is None:
            errors = [{"field": ["id"], "message": "Order does not exist"}]
            return {"tagsAdd": {"node": None, "userErrors": errors}}, MUTATION_COST
        order["tags"] = sorted({*order["tags"], *tags})
        order["updatedAt"] = iso(self.now())
        return {"tagsAdd": {"node": {"id": order["id"]}, "userErrors": []}}, MUTATION_COST

    # ------------------------------------------------------------------ inventory

    def _list_locations(self, query: str, variables: dict[str, Any]) -> tuple[Any, int]:
        nodes = list(self.locations.values())[: variables["first"]]
        cursors = [encode_cursor(("", n["id"])) for n in nodes]
        connection = connection_shape(
            query, nodes, cursors, has_next=len(self.locations) > len(nodes)
        )
        return {"locations": connection}, 2 + len(nodes)

    def _variants_by_sku(self, query: str, variables: dict[str, Any]) -> tuple[Any, int]:
        first = variables["first"]
        skus = parse_sku_query(str(variables.get("query") or ""))
        location = str(variables.get("locationId") or self.default_location)
        if location not in self.locations:
            raise GraphQLError(f"Invalid id: {location}", "BAD_REQUEST")
        variants = sorted(self.variants.values(), key=lambda v: v["id"])
        if skus is not None:
            variants = [v for v in variants if v["sku"] in skus]
        after = variables.get("after")
        if after:
            key = decode_cursor(after)
            variants = [v for v in variants if ("", v["id"]) > key]
        page = variants[:first]
        nodes = []
        for variant in page:
            item_id = variant["inventoryItem"]["id"]
            level = self.levels.get((item_id, location))
            inventory_level = None
            if level is not None:
                quantities = [{"name": "available", "quantity": level["available"]}]
                inventory_level = {"id": f"{item_id}?location={location}", "quantities": quantities}
            node = {k: v for k, v in variant.items() if k != "inventoryItem"}
            node["inventoryItem"] = {"id": item_id, "inventoryLevel": inventory_level}
            nodes.append(node)
        cursors = [encode_cursor(("", v["id"])) for v in page]
        connection = connection_shape(query, nodes, cursors, has_next=len(variants) > first)
        return {"productVariants": connection}, 2 + 4 * len(nodes)

    def _set_inventory(self, query: str, variables: dict[str, Any]) -> tuple[Any, int]:
        data = variables.get("input")
        if not isinstance(data, dict) or not isinstance(data.get("quantities"), list):
            raise GraphQLError(
                "Variable $input of type InventorySetQuantitiesInput! was provided invalid value",
                "INVALID_VARIABLE",
            )
        quantities: list[Any] = data["quantities"]
        if len(quantities) > MAX_INPUT:
            raise GraphQLError(
                f"The input array size of {len(quantities)} is greater than the maximum allowed "
                f"of {MAX_INPUT}.",
                "MAX_INPUT_SIZE_EXCEEDED",
            )
        name = data.get("name")
        errors: list[dict[str, Any]] = []
        if name not in ("available", "on_hand"):
            errors.append(
                user_error(
                    ["input", "name"],
                    "INVALID_NAME",
                    "The quantity name must be either 'available' or 'on_hand'.",
                )
            )
        if data.get("reason") not in REASONS:
            errors.append(
                user_error(
                    ["input", "reason"], "INVALID_REASON", "The specified reason is invalid."
                )
            )
        ignore_compare = bool(data.get("ignoreCompareQuantity"))
        planned: list[tuple[dict[str, int], int, str, str]] = []
        for index, entry in enumerate(quantities):
            where = ["input", "quantities", str(index)]
            problem = self._check_quantity(entry, where, ignore_compare, str(name))
            if isinstance(problem, dict):
                errors.append(problem)
            else:
                planned.append(problem)
        if errors:
            failed = {"inventoryAdjustmentGroup": None, "userErrors": errors}
            return {"inventorySetQuantities": failed}, MUTATION_COST
        changes = []
        for level, quantity, item_id, location_id in planned:
            delta = quantity - level[str(name)]
            level[str(name)] = quantity
            if name == "available":
                level["on_hand"] += delta
            changes.append(
                {
                    "name": name,
                    "delta": delta,
                    "quantityAfterChange": quantity,
                    "item": {"id": item_id},
                    "location": {"id": location_id},
                }
            )
        group = {
            "id": gid("InventoryAdjustmentGroup", self._next("Group")),
            "createdAt": iso(self.now()),
            "reason": data["reason"],
            "referenceDocumentUri": data.get("referenceDocumentUri"),
            "changes": changes,
        }
        payload: dict[str, Any] = {"inventoryAdjustmentGroup": group, "userErrors": []}
        return {"inventorySetQuantities": payload}, MUTATION_COST

    def _check_quantity(
        self, entry: Any, where: list[str], ignore_compare: bool, name: str
    ) -> dict[str, Any] | tuple[dict[str, int], int, str, str]:
        if not isinstance(entry, dict):
            return user_error(
                where, "INVALID_INVENTORY_ITEM", "The specified inventory item could not be found."
            )
        item_id, location_id = str(entry.get("inventoryItemId")), str(entry.get("locationId"))
        quantity = entry.get("quantity")
        if not any(v["inventoryItem"]["id"] == item_id for v in self.variants.values()):
            return user_error(
                [*where, "inventoryItemId"],
                "INVALID_INVENTORY_ITEM",
                "The specified inventory item could not be found.",
            )
        if location_id not in self.locations:
            return user_error(
                [*where, "locationId"],
                "INVALID_LOCATION",
                "The specified location could not be found.",
            )
        level = self.levels.get((item_id, location_id))
        if level is None:
            return user_error(
                [*where, "locationId"],
                "ITEM_NOT_STOCKED_AT_LOCATION",
                "The specified inventory item is not stocked at the location.",
            )
        if not isinstance(quantity, int) or isinstance(quantity, bool):
            return user_error(
                [*where, "quantity"], "INVALID_QUANTITY_TOO_LOW", "The quantity is invalid."
            )
        if quantity > 1_000_000_000:
            return user_error(
                [*where, "quantity"],
                "INVALID_QUANTITY_TOO_HIGH",
                "The total quantity can't be higher than 1,000,000,000.",
            )
        if quantity < 0 and name == "on_hand":
            return user_error(
                [*where, "quantity"], "INVALID_QUANTITY_NEGATIVE", "The quantity can't be negative."
            )
        if not ignore_compare:
            if "compareQuantity" not in entry:
                return user_error(
                    [*where, "compareQuantity"],
                    "COMPARE_QUANTITY_REQUIRED",
                    "The compareQuantity argument must be given to each quantity or "
                    "ignored using ignoreCompareQuantity.",
                )
            if entry["compareQuantity"] != level[name]:
                return user_error(
                    [*where, "compareQuantity"],
                    "COMPARE_QUANTITY_STALE",
                    "The compareQuantity value does not match persisted value.",
                )
        return level, quantity, item_id, location_id
