"""Settings, inputs and outputs of the `sql` connector (pydantic models)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flowkit.connectors.base import Input, Output


class SqlSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        description="SQLAlchemy database URL, e.g. `sqlite:///stock.db` (relative to the "
        "recipe's folder) or `postgresql+psycopg://user:${{ secrets.DB_PASSWORD }}@host/db`.",
        min_length=1,
    )


class QueryInput(Input):
    sql: str = Field(description="One SELECT or WITH statement with `:name` placeholders.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Values for the `:name` placeholders."
    )


class QueryOutput(Output):
    items: list[dict[str, Any]] = Field(description="One mapping per row, keyed by column.")
    count: int = Field(description="Number of rows.")


class ExecuteInput(Input):
    sql: str = Field(description="One statement with `:name` placeholders.")
    params: dict[str, Any] | list[dict[str, Any]] = Field(
        default_factory=dict,
        description="Values for the placeholders, or a list of such mappings to run the "
        "statement once per mapping (in one transaction).",
    )


class ExecuteOutput(Output):
    rowcount: int = Field(description="Rows changed, as reported by the driver (-1: unknown).")
