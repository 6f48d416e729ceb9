"""The engine: decides what runs (items, steps, retries, waits) and runs it; never prints.

Modules: `clock` (time you can control), `environment` (.env, secrets, vars), `events` (what the
engine reports), `retry` (the tenacity-based policy), `connections` (connector sessions),
`item` (one item's step graph with the journal), `executor` (runs item jobs concurrently),
`runner` (one `flowkit run`: lock, due items, trigger, summary), `dryrun` (the overlay store).
"""
