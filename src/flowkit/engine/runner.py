"""One `flowkit run`: lock, due items first, then the trigger, then a summary.

Order of a run:
  1. take the recipe's lock (a second run exits with LockHeld, exit code 5);
  2. run the items that are due: PENDING (left by a crash), WAITING whose wake-up time has come,
     FAILED with retries left (`max_item_failures`);
  3. call the trigger with the stored cursor, store the new items and the new cursor in one
     transaction, and run them;
  4. record the run's summary and pick the exit code.
A recipe without a trigger runs one item per invocation, keyed by the run id.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import random
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from flowkit import redact
from flowkit.connectors.base import CallContext, idempotency_key, no_debug
from flowkit.connectors.registry import Registry, default_registry
from flowkit.engine import crashpoints
from flowkit.engine.clock import Clock, SystemClock
from flowkit.engine.connections import Connections
from flowkit.engine.dryrun import OverlayStore
from flowkit.engine.environment import resolve_secrets
from flowkit.engine.events import Event, Listener, ignore
from flowkit.engine.executor import Executor, LocalExecutor
from flowkit.engine.item import ItemRun
from flowkit.engine.retry import DEFAULT_RETRY, call_with_retry
from flowkit.engine.scope import ItemResult, RunScope
from flowkit.errors import (
    ConnectorError,
    ExitCode,
    ExpressionError,
    FlowkitError,
    PluginError,
    StateError,
)
from flowkit.expressions import compile_template, find_references, render_value
from flowkit.recipe.loader import LoadedRecipe
from flowkit.state.base import ItemRecord, ItemStatus, StateStore


@dataclass
class RunOptions:
    dry_run: bool = False
    offline: bool = False
    concurrency: int | None = None
    wait_lock: float = 0.0
    limit: int | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    clock: Clock = field(default_factory=SystemClock)
    registry: Registry | None = None
    listener: Listener = ignore
    executor: Executor = field(default_factory=LocalExecutor)
    debug: Callable[[str], None] = no_debug
    seed: int | None = None


@dataclass
class RunSummary:
    run_id: str
    recipe: str
    dry_run: bool
    status: str = "ok"  # ok | partial | failed
    listed: int = 0
    new: int = 0
    processed: int = 0
    done: int = 0
    failed: int = 0
    waiting: int = 0
    planned: int = 0
    errors: list[str] = field(default_factory=list)
    trigger_error: str | None = None
    started_at: float = 0.0
    duration: float = 0.0

    @property
    def exit_code(self) -> ExitCode:
        if self.trigger_error is not None or (self.failed and not (self.done or self.waiting)):
            return ExitCode.FAILED
        if self.failed:
            return ExitCode.PARTIAL
        return ExitCode.OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "recipe": self.recipe,
            "dry_run": self.dry_run,
            "status": self.status,
            "listed": self.listed,
            "new": self.new,
            "processed": self.processed,
            "done": self.done,
            "failed": self.failed,
            "waiting": self.waiting,
            "planned": self.planned,
            "errors": self.errors[:20],
            "trigger_error": self.trigger_error,
            "duration": round(self.duration, 3),
        }


def referenced_secrets(loaded: LoadedRecipe) -> set[str]:
    dumped = loaded.recipe.model_dump(mode="json", by_alias=True)
    names = set(loaded.recipe.secrets)
    for _path, ref in find_references(dumped):
        if ref.root == "secrets" and ref.path and isinstance(ref.path[0], str):
            names.add(ref.path[0])
    return names


def optional_secrets(loaded: LoadedRecipe) -> set[str]:
    """Secrets declared `required: false`: a run goes on without them."""
    return {
        name
        for name, spec in loaded.recipe.secrets.items()
        if spec is not None and not isinstance(spec, str) and not spec.required
    }


def required_secrets(loaded: LoadedRecipe) -> set[str]:
    """Secrets a run cannot start without: referenced or declared, and not optional."""
    return referenced_secrets(loaded) - optional_secrets(loaded)


def _secret_values(loaded: LoadedRecipe, env: Mapping[str, str]) -> dict[str, str]:
    """The required secrets (a missing one is a usage error) and the optional ones that are set."""
    values = resolve_secrets(required_secrets(loaded), env)
    values.update(resolve_secrets({n for n in optional_secrets(loaded) if env.get(n)}, env))
    return values


# Items allocate many short-lived acyclic objects (contexts, rows, futures); with the default
# threshold (700) the cyclic collector runs every few steps and rescans the in-flight items,
# about 40 us per step-item in benchmarks/engine.py. Reference counting frees these objects
# anyway; the collector still runs, only less often, while a batch of items is processed.
GC_THRESHOLD = 20_000


@contextlib.contextmanager
def relaxed_gc() -> Iterator[None]:
    """Raise the cyclic collector's first threshold for the duration of the block, and keep
    the objects that exist when it starts (modules, models, the recipe) out of its scans.

    `gc.freeze()` moves every tracked object to a generation the collector skips, so the full
    collections a long run still triggers look at the run's own objects only: 55-73 against
    6 ms per run of benchmarks/engine.py (all generations: 92-133 against 28-29 ms). The
    objects return to the oldest generation when the block ends (`gc.unfreeze()`).
    """
    previous = gc.get_threshold()
    if previous[0] == 0 or previous[0] >= GC_THRESHOLD:  # disabled or already relaxed
        yield
        return
    gc.set_threshold(GC_THRESHOLD, *previous[1:])
    # a program embedding flowkit that froze objects itself keeps its own freeze as it is
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    try:
        yield
    finally:
        if freeze:
            gc.unfreeze()
        gc.set_threshold(*previous)


def flush_size(concurrency: int) -> int:
    """Step changes per journal batch before it is sent early: about half the items in
    flight, so the writer commits one part while the loop prepares the next. Measured with
    `benchmarks/engine.py`: at concurrency 64, 32 beat 64 (180-190 against 205-210 us per
    step-item, the loop idle 31-42 against 62-64); at 256, 64 beat 32 by a little."""
    return max(16, min(128, concurrency // 2))


class RecipeRun:
    def __init__(self, loaded: LoadedRecipe, store: StateStore, options: RunOptions) -> None:
        self.loaded = loaded
        self.recipe = loaded.recipe
        self.options = options
        self.real_store = store
        self.store: StateStore = OverlayStore(store) if options.dry_run else store
        self.run_id = (
            time.strftime("%Y%m%d-%H%M%S", time.gmtime(options.clock.now()))
            + "-"
            + uuid.uuid4().hex[:6]
        )
        self.summary = RunSummary(self.run_id, self.recipe.name, options.dry_run)
        self.processed: set[str] = set()

    def emit(self, kind: str, **kw: Any) -> None:
        self.options.listener(Event(kind=kind, recipe=self.recipe.name, run_id=self.run_id, **kw))

    def _listener(self, event: Event) -> None:
        if event.kind == "plan":
            self.summary.planned += 1
        self.options.listener(event)

    async def execute(self) -> RunSummary:
        opts = self.options
        clock = opts.clock
        env = dict(opts.env)
        secrets = _secret_values(self.loaded, env)
        run_ctx = {
            "id": self.run_id,
            "started_at": clock.now(),
            "dry_run": opts.dry_run,
            "recipe": self.recipe.name,
        }
        base: dict[str, Any] = {"env": env, "secrets": secrets, "run": run_ctx}
        variables = dict(self.recipe.vars)
        variables.update(opts.variables)
        base["vars"] = render_value(variables, {**base, "__now__": clock.now()})
        lock = self.store.lock(self.recipe.name, opts.wait_lock)
        self.summary.started_at = clock.now()
        connections = Connections(
            self.recipe,
            opts.registry or default_registry(),
            self.store,
            base,
            self.loaded.path.parent,
            debug=opts.debug,
        )
        scope = RunScope(
            recipe=self.recipe,
            graph=self.loaded.graph,
            store=self.store,
            connections=connections,
            clock=clock,
            run_id=self.run_id,
            base_context=base,
            # plan events (counted by _listener) only happen in dry runs
            listener=self._listener if opts.dry_run else opts.listener,
            dry_run=opts.dry_run,
            offline=opts.offline,
            rng=random.Random(opts.seed),
            debug=opts.debug,
        )
        try:
            if not opts.dry_run:
                await self._close_crashed_runs()
            await self.store.start_run(
                self.run_id, self.recipe.name, self.loaded.source_hash, clock.now()
            )
            self.emit("run_started", data={"dry_run": opts.dry_run})
            due = await self.store.items_to_run(
                self.recipe.name, clock.now(), self.recipe.max_item_failures
            )
            await self.process(scope, due)
            if not self._limit_reached():
                await self.poll(scope, base)
            self.summary.duration = clock.now() - self.summary.started_at
            self.summary.status = {ExitCode.OK: "ok", ExitCode.PARTIAL: "partial"}.get(
                self.summary.exit_code, "failed"
            )
            await self.store.finish_run(
                self.run_id,
                self.summary.status,
                redact.redact(self.summary.as_dict()),
                clock.now(),
            )
            self.emit("run_finished", status=self.summary.status, data=self.summary.as_dict())
            return self.summary
        finally:
            await connections.close()
            lock.release()

    async def _close_crashed_runs(self) -> None:
        """Runs of this recipe still marked running were killed: we hold the lock, so none of
        them can be alive. Mark them crashed so the history does not show them running."""
        for run in await self.store.list_runs(self.recipe.name, 50):
            if run.status == "running":
                summary = dict(run.summary or {})
                summary["note"] = "the process stopped before finishing (killed or crashed)"
                # its writes in flight join its history now (an intent has no attempt row)
                interrupted = await self.store.record_interrupted(run.id)
                if interrupted:
                    summary["interrupted"] = interrupted
                await self.store.finish_run(run.id, "crashed", summary, self.options.clock.now())

    def _limit_reached(self) -> bool:
        limit = self.options.limit
        return limit is not None and self.summary.processed >= limit

    async def process(self, scope: RunScope, records: list[ItemRecord], fresh: int = 0) -> None:
        """Run `records`; the last `fresh` of them were just admitted, so they have no journal
        (a step row needs its item's row) and none is read for them."""
        new = {r.key for r in records[len(records) - fresh :]} if fresh else set()
        records = [r for r in records if r.key not in self.processed]
        if self.options.limit is not None:
            records = records[: max(0, self.options.limit - self.summary.processed)]
        if not records:
            return
        self.processed.update(r.key for r in records)
        concurrency = self.options.concurrency or self.recipe.concurrency or 8

        stored = [r.key for r in records if r.key not in new]
        journals = await scope.store.get_steps_many(self.recipe.name, stored) if stored else {}
        for record in records:
            if record.key in new:
                journals[record.key] = {}

        def work(record: ItemRecord) -> Coroutine[Any, Any, ItemResult]:
            # the item's coroutine itself, not one that awaits it: every time the item
            # resumes, it passes through one frame fewer
            return ItemRun(scope, record, journals.pop(record.key, None)).run()

        assert scope.journal is not None
        scope.journal.flush_at = flush_size(concurrency)
        with relaxed_gc():
            try:
                results = await self.options.executor.run_all(records, work, concurrency)
            except asyncio.CancelledError:
                # Stopping: what the items journaled on the way out (writes withdrawn before
                # they were sent) must reach the store before it is closed.
                with contextlib.suppress(Exception):
                    await scope.journal.drain()
                raise
        await scope.journal.drain()  # the items' last changes are durable before any report
        for result in results:
            self.summary.processed += 1
            if result.status is ItemStatus.DONE:
                self.summary.done += 1
            elif result.status is ItemStatus.WAITING:
                self.summary.waiting += 1
            elif result.status is ItemStatus.FAILED:
                self.summary.failed += 1
                self.summary.errors.append(f"item {result.key}: {result.error}")

    async def poll(self, scope: RunScope, base: dict[str, Any]) -> None:
        clock = self.options.clock
        trigger = self.recipe.trigger
        if trigger is None:
            key = f"run-{self.run_id}"
            await self.store.admit_items(self.recipe.name, [(key, {})], None, clock.now())
            self.summary.new = 1
            record = await self.store.get_item(self.recipe.name, key)
            if record is not None:
                await self.process(scope, [record])
            return
        try:
            raw_cursor = await self.store.get_cursor(self.recipe.name)
            cursor = json.loads(raw_cursor) if raw_cursor is not None else None
            bound = await scope.connections.bind(trigger.use, trigger.connection)
            ctx = {**base, "cursor": cursor, "__now__": clock.now()}
            rendered = render_value(dict(trigger.with_), ctx)
            data = bound.action.Input.model_validate(rendered)
            call = CallContext(
                idempotency_key=idempotency_key(self.recipe.name, "trigger", self.run_id),
                recipe=self.recipe.name,
                step="trigger",
            )
            if self.options.dry_run and self.options.offline:
                output: Any = bound.action.simulate(data, call)
            else:
                output, _attempts = await call_with_retry(
                    lambda _n: bound.action.run(bound.session, data, call),
                    policy=trigger.retry or DEFAULT_RETRY,
                    clock=clock,
                    may_retry=lambda _exc: True,
                    on_retry=lambda n, exc, delay: self.emit(
                        "retry",
                        step="trigger",
                        status=exc.kind.value,
                        message=str(exc),
                        data={"attempt": n, "delay": delay},
                    ),
                    rng=scope.rng,
                )
            if hasattr(output, "model_dump"):
                output = output.model_dump(mode="json", by_alias=True)
            octx = {**base, "output": output, "cursor": cursor, "__now__": clock.now()}
            items = compile_template(trigger.items).render(octx)
            if not isinstance(items, list):
                raise FlowkitError(f"trigger items gave {type(items).__name__}, expected a list")
            key_tpl = compile_template(trigger.key)
            pairs: list[tuple[str, Any]] = []
            seen: set[str] = set()
            kctx = dict(octx)  # one context for every item's key, not a copy per item
            for index, item in enumerate(items):
                kctx["item"] = item
                key = key_tpl.render(kctx)
                if key is None or key == "" or isinstance(key, dict | list | bool):
                    raise FlowkitError(
                        f"trigger key gave {key!r} for item {index}; a key must be text or a number"
                    )
                text = str(key)
                if text not in seen:
                    seen.add(text)
                    pairs.append((text, item))
            new_cursor = None
            if trigger.cursor is not None:
                value = compile_template(trigger.cursor).render(octx)
                if value is not None:
                    new_cursor = json.dumps(value)
            # Items stored before this admission that are due now (a wait that elapsed during
            # the run); read first, so that it holds none of the items admitted below.
            due = await self.store.items_to_run(
                self.recipe.name, clock.now(), self.recipe.max_item_failures
            )
            crashpoints.reached("before_admit")
            admitted = await self.store.admit_new_items(
                self.recipe.name, pairs, new_cursor, clock.now()
            )
            crashpoints.reached("after_admit")
        except (ConnectorError, ExpressionError, PluginError, FlowkitError) as exc:
            if isinstance(exc, PluginError | StateError):
                raise
            message = f"trigger {trigger.use}: {exc}"
            self.summary.trigger_error = redact.redact_text(message)
            self.emit("trigger", status="failed", message=self.summary.trigger_error)
            return
        except Exception as exc:
            from pydantic import ValidationError

            if not isinstance(exc, ValidationError):
                raise
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            self.summary.trigger_error = f"trigger {trigger.use}: input {where}: {first['msg']}"
            self.emit("trigger", status="failed", message=self.summary.trigger_error)
            return
        self.summary.listed = len(pairs)
        self.summary.new = len(admitted)
        self.emit("trigger", status="ok", data={"listed": len(pairs), "new": len(admitted)})
        # The new items run from the records the admission returned (they come after every
        # older item in admission order, as a read of the store would list them), and have
        # no journal yet: nothing is read back.
        await self.process(scope, due + admitted, fresh=len(admitted))


async def run_recipe(loaded: LoadedRecipe, store: StateStore, options: RunOptions) -> RunSummary:
    return await RecipeRun(loaded, store, options).execute()
