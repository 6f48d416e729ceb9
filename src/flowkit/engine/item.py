"""One item's step graph, executed with the journal: the exactly-once core.

For every step the journal (state store) is consulted first: a step already OK or SKIPPED is
never repeated (its stored output is reused). Every call carries an idempotency key derived
from (recipe, item key, step key), so a crash between sending and journaling leads to a repeat
under the SAME key, which an idempotent action (Stripe `Idempotency-Key`, QuickBooks
`requestid`, a PUT of a stock level) absorbs. Writes other than naturally idempotent ones are
preceded by an intent record (STARTED, with the key and a fingerprint of the input): after a
crash the next run finds it and either repeats the write under the same key (only if the input
is unchanged) or, for an action without idempotency, reports the step UNKNOWN for a human to
check instead of sending it twice.
"""

from __future__ import annotations

import asyncio
import random
import traceback
import types
from collections.abc import Callable, Coroutine, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

from pydantic import BaseModel, ValidationError

from flowkit import jsontext, redact
from flowkit.connectors.base import (
    CallContext,
    Change,
    Effect,
    Idempotency,
    idempotency_key,
    no_debug,
    short_digest,
)
from flowkit.engine import crashpoints
from flowkit.engine.clock import Clock
from flowkit.engine.connections import Bound, Connections
from flowkit.engine.events import Event, Listener, ignore
from flowkit.engine.journal import Journal
from flowkit.engine.retry import DEFAULT_RETRY, call_with_retry
from flowkit.errors import ConnectorError, ErrorKind, ExpressionError, FlowkitError, PluginError
from flowkit.expressions import compile_template
from flowkit.expressions.template import Render, compile_value
from flowkit.graph import StepGraph
from flowkit.recipe.models import OnError, Recipe, Retry, Step
from flowkit.state.base import (
    ItemRecord,
    ItemStatus,
    StateStore,
    StepRecord,
    StepStatus,
    StepWrite,
)

T = TypeVar("T")


@dataclass
class RunScope:
    """Everything shared by the items of one run."""

    recipe: Recipe
    graph: StepGraph
    store: StateStore
    connections: Connections
    clock: Clock
    run_id: str
    base_context: dict[str, Any]  # vars, env, secrets, run
    listener: Listener
    dry_run: bool = False
    offline: bool = False
    rng: random.Random = field(default_factory=random.Random)
    debug: Callable[[str], None] = no_debug
    by_id: dict[str, Step] = field(default_factory=dict)
    journal: Journal | None = None
    plans: dict[int, StepPlan] = field(default_factory=dict)  # by id() of the step or hook

    # the waves an item runs in while every step completes (see `ItemRun.run`)
    waves: list[tuple[Step, ...]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_id = {step.id: step for step in self.recipe.steps}
        if self.journal is None:
            self.journal = Journal(self.store, self.run_id)
        self.waves = [tuple(self.by_id[s] for s in wave) for wave in _waves(self.graph)]


def _waves(graph: StepGraph) -> list[list[str]]:
    """The ready sets `ItemRun.run` finds when every step completes: the same for every item,
    so they are worked out once per run."""
    waves: list[list[str]] = []
    done: set[str] = set()
    remaining = list(graph.order)
    while remaining:
        ready = [s for s in remaining if graph.deps[s] <= done]
        if not ready:  # a cycle; the loader reports those, the generic loop stops on them
            break
        waves.append(ready)
        done.update(ready)
        remaining = [s for s in remaining if s not in done]
    return waves


@dataclass(slots=True)
class StepPlan:
    """What a step's calls share within a run, worked out at its first call: the bound
    action, its compiled `with:` and the journal flags, so each call does only its own work."""

    bound: Bound
    render: Render  # the step's `with:`, compiled
    is_write: bool
    intent: bool  # a write without natural idempotency: journal an intent before sending
    policy: Retry
    direct: bool  # no connection limit and no timeout: call the action as it is


@dataclass(slots=True)
class Outcome:
    status: StepStatus
    output: Any = None
    error: str | None = None
    kind: ErrorKind | None = None
    wake_at: float | None = None
    attempts: int = 0


@dataclass(slots=True)
class Send:
    """A call worked out up to sending: input validated, key and intent queued. The sends of
    a wave wait for one settle together (`ItemRun.run_wave`)."""

    step: Step
    step_key: str
    plan: StepPlan
    data: BaseModel
    call: CallContext
    fingerprint: str | None
    simulate: bool  # a dry run: print the write instead of sending it
    # a real write: the outcomes it depends on and its own intent must be durable first
    settles: bool
    started: bool = False  # `send` began: the request may be on its way


DONE = (StepStatus.OK, StepStatus.SKIPPED)  # a journaled step that is never repeated
STARTED = Outcome(StepStatus.STARTED)  # the intent of a write (only read, never changed)


@dataclass
class ItemResult:
    key: str
    status: ItemStatus
    error: str | None = None
    wake_at: float | None = None
    steps: dict[str, str] = field(default_factory=dict)


@types.coroutine
def _resume(coro: Coroutine[Any, Any, T], waits_for: Any) -> Generator[Any, Any, T]:
    """Go on running `coro`, which was stepped by hand (`coro.send(None)`) until it yielded
    `waits_for`, in the task that awaits this: what `await coro` would have done from there.
    The task's own cancellation and `close()` reach `coro` as they would through `await`."""
    while True:
        try:
            value = yield waits_for
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # thrown in by the task: a cancellation, mostly
            try:
                waits_for = coro.throw(exc)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
        else:
            try:
                waits_for = coro.send(value)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]


def fingerprint(data: Any) -> str:
    """A short hash of a request's canonical JSON, to detect an edited request on resume."""
    return short_digest(jsontext.canonical(data))


def _to_plain(value: Any) -> Any:
    """`value.model_dump(mode="json", by_alias=True)` for a model: the same call of the
    model's compiled serializer, without the Python wrapper (1.7 against 3.0 us)."""
    if isinstance(value, BaseModel):
        return type(value).__pydantic_serializer__.to_python(value, mode="json", by_alias=True)
    return value


MASKED_OUTPUT = "output stored with secrets masked"
NOT_SENT = "the run stopped before sending it; the next run sends it"


class StepError(Exception):
    """A step failed before or outside the connector call (bad input, expression, plugin)."""

    def __init__(self, message: str, kind: ErrorKind = ErrorKind.VALIDATION) -> None:
        super().__init__(message)
        self.kind = kind


class ItemRun:
    def __init__(
        self, scope: RunScope, record: ItemRecord, journal: dict[str, StepRecord] | None = None
    ) -> None:
        self.scope = scope
        self.record = record
        self.key = record.key
        self._prefetched = journal
        self.journal: dict[str, StepRecord] = {}
        self.steps_ctx: dict[str, dict[str, Any]] = {}
        self.outcomes: dict[str, Outcome] = {}
        self._ctx: dict[str, Any] | None = None
        self.masked: set[str] = set()  # reused steps whose stored output lost a secret
        self.pending: list[asyncio.Future[None]] = []  # queued journal changes

    # context --------------------------------------------------------------------------
    def context(self, **extra: Any) -> dict[str, Any]:
        """The expression context of this item (shared; `extra` makes a private copy)."""
        ctx = self._ctx
        if ctx is None:
            ctx = self._ctx = dict(self.scope.base_context)
            ctx["item"] = self.record.data
            ctx["steps"] = self.steps_ctx
        ctx["__now__"] = self.scope.clock.now()
        if extra:
            ctx = {**ctx, **extra}
        return ctx

    def emit(self, kind: str, **kw: Any) -> None:
        listener = self.scope.listener
        if listener is ignore:  # nobody listens (a library run): build no event
            return
        listener(
            Event(
                kind=kind,
                recipe=self.scope.recipe.name,
                run_id=self.scope.run_id,
                item=self.key,
                **kw,
            )
        )

    # journal ----------------------------------------------------------------------------
    async def settle(self) -> None:
        """Wait until every journal change this item queued so far is durable.

        Several steps of an item may settle at once: each waits for all queued changes
        (shared `Batch` futures, which a cancelled waiter cannot cancel), not only for those
        no other step awaits. The first failed batch's error is raised.
        """
        pending = self.pending
        for future in pending:  # other steps of this item may append while this one waits
            if not future.done():
                try:
                    await future
                except asyncio.CancelledError:
                    raise
                except BaseException:  # raised below, in queue order
                    pass
        self.pending = []
        for future in pending:
            if future.exception() is not None:
                raise future.exception()  # type: ignore[misc]

    def _queued(self, future: asyncio.Future[None]) -> None:
        pending = self.pending
        if not pending or pending[-1] is not future:  # a tick's changes share one future
            pending.append(future)

    def put(
        self,
        step_key: str,
        outcome: Outcome,
        idempotency_key: str | None = None,
        fingerprint: str | None = None,
    ) -> None:
        """Queue a journal change for this item (durable by the next `settle`).

        Nothing with an effect happens before a settle: a write settles (its dependencies'
        outcomes and its own intent) before sending, and the run drains the journal before
        it reports, so "journaled before the next step acts" holds while a step's outcome
        and the next step's intent share one transaction.
        """
        scope = self.scope
        assert scope.journal is not None
        output = outcome.output
        error = redact.redact_text(outcome.error) if outcome.error else None
        if output is not None and redact.has_secrets():
            masked = redact.redact(output)
            if masked != output and outcome.status is StepStatus.OK:
                # the stored output lost a secret: a resumed item must not render the mask
                error = MASKED_OUTPUT
            output = masked
        kind = outcome.kind
        batch = scope.journal.enqueue(
            StepWrite(
                scope.recipe.name,
                self.key,
                step_key,
                outcome.status,
                scope.clock.now(),
                output,
                outcome.attempts,
                error,
                kind._value_ if kind is not None else None,
                idempotency_key,
                fingerprint,
            )
        )
        pending = self.pending
        if not pending or pending[-1] is not batch:  # a tick's changes share one future
            pending.append(batch)

    # the graph --------------------------------------------------------------------------
    async def run(self) -> ItemResult:
        scope = self.scope
        if self._prefetched is not None:
            self.journal = self._prefetched
        else:
            self.journal = await scope.store.get_steps(scope.recipe.name, self.key)
        self.emit("item_started")
        done: set[str] = set()
        blocked = False
        # While every step completes, the ready sets are the run's precomputed waves; from the
        # first step that waits or fails on, they are worked out from what completed.
        for wave in scope.waves:
            if blocked or len(done) != len(self.outcomes):
                break
            blocked = await self.run_ready(wave, done)
        graph = scope.graph
        remaining = [s for s in graph.order if s not in self.outcomes]
        while remaining and not blocked:
            # steps whose dependencies are waiting (or failed) are not ready: stop there
            ready = [s for s in remaining if graph.deps[s] <= done]
            if not ready:
                break
            remaining = [s for s in remaining if s not in ready]
            blocked = await self.run_ready(tuple(scope.by_id[s] for s in ready), done)
        return await self.finish()

    async def run_ready(self, steps: tuple[Step, ...], done: set[str]) -> bool:
        """Run steps whose dependencies completed, record their outcomes, add the completed
        ones to `done`; True when one failed in a way that stops the item."""
        if len(steps) == 1:
            outcomes = [await self.run_step(steps[0])]
        elif any(step.for_each is not None for step in steps):
            # a fan-out settles per element: each step in its own task (the first in this one)
            others = [asyncio.ensure_future(self.run_step(step)) for step in steps[1:]]
            try:
                first = await self.run_step(steps[0])
            except BaseException:
                for task in others:
                    task.cancel()
                raise
            outcomes = [first, *[await task for task in others]]
        else:
            outcomes = await self.run_wave(steps)
        blocked = False
        for step, outcome in zip(steps, outcomes, strict=True):
            step_id = step.id
            status = outcome.status
            self.outcomes[step_id] = outcome
            self.steps_ctx[step_id] = {
                "output": outcome.output,
                "status": status._value_,
                "error": outcome.error,
            }
            if status in DONE or (
                status is StepStatus.FAILED and step.on_error is OnError.CONTINUE
            ):
                done.add(step_id)
            elif status is not StepStatus.WAITING:  # dependents of a wait stay unstarted
                blocked = True
        return blocked

    async def run_wave(self, steps: tuple[Step, ...]) -> list[Outcome]:
        """Several ready steps: work each out up to sending, settle their intents (and the
        outcomes they depend on) once for all of them, then send them concurrently.

        The sends start in this task, one after the other, as long as each completes without
        waiting (a call that needs no I/O); the first one that waits goes on in this task,
        and the rest start in tasks of their own, so calls that wait still overlap. (A task
        per send cost about 8 us per item; Python 3.12's eager tasks do the same.)
        """
        prepared: list[Outcome | Send] = []
        for step in steps:
            prepared.append(await self.prepare_step(step))
        sends = [p for p in prepared if type(p) is Send]
        if not sends:
            return prepared  # type: ignore[return-value]
        if self.pending and any(s.settles for s in sends):
            await self.settle_before(sends)
        sent: list[Outcome] = []
        others: list[asyncio.Task[Outcome]] = []
        try:
            for index, send in enumerate(sends):
                coro = self.send_step(send)
                try:
                    waits_for = coro.send(None)  # runs in this task, up to its first wait
                except StopIteration as done:
                    sent.append(done.value)
                    continue
                loop = asyncio.get_running_loop()
                others = [loop.create_task(self.send_step(s)) for s in sends[index + 1 :]]
                sent.append(await _resume(coro, waits_for))
                sent.extend([await task for task in others])
                break
        except BaseException:
            for task in others:
                task.cancel()  # a task cancelled before its first step never starts
            # The run is stopping (or a step crashed): the writes that were never started
            # were not sent, and their intents are durable; say so, as `settle_before` does.
            self.withdraw([s for s in sends if not s.started])
            raise
        results = iter(sent)
        return [next(results) if type(p) is Send else p for p in prepared]  # type: ignore[misc]

    async def finish(self) -> ItemResult:
        scope = self.scope
        statuses: dict[str, str] = {}
        failed: tuple[str, Outcome] | None = None  # the first step that fails the item
        waiting: list[float | None] = []
        for k, o in self.outcomes.items():
            status = o.status
            statuses[k] = status._value_
            if status is StepStatus.WAITING:
                waiting.append(o.wake_at)
            elif failed is None and (
                status is StepStatus.UNKNOWN
                or (status is StepStatus.FAILED and scope.by_id[k].on_error is OnError.FAIL)
            ):
                failed = (k, o)
        now = scope.clock.now()
        if failed:
            step_id, outcome = failed
            error = f"step {step_id}: {outcome.error}"
            self._queued(
                scope.journal.enqueue_item(  # type: ignore[union-attr]
                    scope.recipe.name,
                    self.key,
                    ItemStatus.FAILED,
                    now,
                    error=redact.redact_text(error),
                )
            )
            result = ItemResult(self.key, ItemStatus.FAILED, error=error, steps=statuses)
            await self.run_hooks(step_id, outcome)
        elif waiting:
            wake_at = min(w for w in waiting if w is not None)
            self._queued(
                scope.journal.enqueue_item(  # type: ignore[union-attr]
                    scope.recipe.name, self.key, ItemStatus.WAITING, now, wake_at=wake_at
                )
            )
            result = ItemResult(self.key, ItemStatus.WAITING, wake_at=wake_at, steps=statuses)
        else:
            self._queued(
                scope.journal.enqueue_item(  # type: ignore[union-attr]
                    scope.recipe.name, self.key, ItemStatus.DONE, now
                )
            )
            result = ItemResult(self.key, ItemStatus.DONE, steps=statuses)
        # Not settled here: the run drains the journal before it reports (Journal.drain),
        # which raises a failed commit; the item only frees its concurrency slot sooner.
        self.pending = []
        if scope.listener is not ignore:
            self.emit(
                "item_finished",
                status=result.status.value,
                message=result.error,
                data={"wake_at": result.wake_at},
            )
        return result

    # one step ---------------------------------------------------------------------------
    async def run_step(self, step: Step) -> Outcome:
        prepared = await self.prepare_step(step)
        if type(prepared) is Outcome:
            return prepared
        assert isinstance(prepared, Send)
        if prepared.settles and self.pending:
            await self.settle_before((prepared,))
        return await self.send_step(prepared)

    async def prepare_step(self, step: Step) -> Outcome | Send:
        """A step's outcome when it needs no call (reused, skipped, failed before sending,
        a wait, a whole fan-out), else its call worked out up to sending."""
        record = self.journal.get(step.id)
        if (
            record is not None
            and record.status in DONE
            and not (record.error == MASKED_OUTPUT and step.use is not None)
        ):
            self.emit("step", step=step.id, status="reused", data={"attempts": 0})
            return Outcome(record.status, record.output, attempts=record.attempts)
        outcomes = self.outcomes
        for dep in self.scope.graph.deps[step.id]:
            if outcomes[dep].status is not StepStatus.OK:
                outcome = Outcome(StepStatus.SKIPPED)
                self.put(step.id, outcome)
                self.emit(
                    "step", step=step.id, status="skipped", message="a dependency did not run"
                )
                return outcome
        try:
            if step.if_ is not None and not self.condition(step):
                outcome = Outcome(StepStatus.SKIPPED)
                self.put(step.id, outcome)
                self.emit("step", step=step.id, status="skipped", message="condition is false")
                return outcome
            if step.wait is not None:
                return await self.wait_step(step, record)
            if step.for_each is not None:
                return await self.fan_out(step)
            return await self.prepare(step, step.id, self.context(), record)
        except (StepError, ExpressionError, PluginError) as exc:
            return self.step_failed(step.id, exc)

    async def send_step(self, send: Send) -> Outcome:
        try:
            return await self.send(send)
        except (StepError, ExpressionError, PluginError) as exc:
            return self.step_failed(send.step_key, exc)

    def step_failed(self, step_id: str, exc: StepError | ExpressionError | PluginError) -> Outcome:
        kind = exc.kind if isinstance(exc, StepError) else ErrorKind.VALIDATION
        outcome = Outcome(StepStatus.FAILED, error=str(exc), kind=kind)
        self.put(step_id, outcome)
        self.emit("step", step=step_id, status="failed", message=str(exc))
        return outcome

    def condition(self, step: Step) -> bool:
        value = step.if_
        if isinstance(value, str):
            value = compile_template(value).render(self.context())
        return bool(value)

    async def wait_step(self, step: Step, record: StepRecord | None) -> Outcome:
        scope = self.scope
        now = scope.clock.now()
        assert step.wait is not None
        if record is not None and record.status is StepStatus.WAITING:
            wake_at = float((record.output or {}).get("wake_at", now))
        elif step.wait.for_ is not None:
            wake_at = now + step.wait.for_
        else:
            wake_at = self.until(step)
        if wake_at <= now:
            outcome = Outcome(StepStatus.OK, {"wake_at": wake_at, "woke_at": now})
            self.put(step.id, outcome)
            self.emit("step", step=step.id, status="ok", message="wait is over")
            return outcome
        outcome = Outcome(StepStatus.WAITING, {"wake_at": wake_at}, wake_at=wake_at)
        if record is None or record.status is not StepStatus.WAITING:
            self.put(step.id, outcome)
        self.emit("step", step=step.id, status="waiting", data={"wake_at": wake_at})
        return outcome

    def until(self, step: Step) -> float:
        from datetime import datetime

        assert step.wait is not None
        value: Any = step.wait.until
        if isinstance(value, str):
            value = compile_template(value).render(self.context())
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                pass
        raise StepError(f"wait.until gave {value!r}; expected unix seconds or ISO-8601 text")

    async def fan_out(self, step: Step) -> Outcome:
        value: Any = step.for_each
        if isinstance(value, str):
            value = compile_template(value).render(self.context())
        if not isinstance(value, list):
            raise StepError(f"for_each gave {type(value).__name__}, expected a list")
        keys = [f"{step.id}[{i}]" for i in range(len(value))]
        outcomes = await asyncio.gather(
            *(
                self.call(step, key, self.context(each=elem, index=i), self.journal.get(key))
                for i, (key, elem) in enumerate(zip(keys, value, strict=True))
            )
        )
        bad = [o for o in outcomes if o.status is not StepStatus.OK]
        if bad:
            worst = next((o for o in bad if o.status is StepStatus.UNKNOWN), bad[0])
            return Outcome(worst.status, error=worst.error, kind=worst.kind)
        outcome = Outcome(StepStatus.OK, [o.output for o in outcomes], attempts=1)
        if not self.scope.dry_run:
            self.put(step.id, outcome)
        return outcome

    # the call ---------------------------------------------------------------------------
    async def call(
        self, step: Step, step_key: str, ctx: Mapping[str, Any], record: StepRecord | None
    ) -> Outcome:
        prepared = await self.prepare(step, step_key, ctx, record)
        if type(prepared) is Outcome:
            return prepared
        assert isinstance(prepared, Send)
        if prepared.settles and self.pending:
            await self.settle_before((prepared,))
        return await self.send(prepared)

    async def prepare(
        self, step: Step, step_key: str, ctx: Mapping[str, Any], record: StepRecord | None
    ) -> Outcome | Send:
        """Everything before sending: render and validate the input, derive the key, and
        queue the intent of a write. An Outcome when there is nothing to send."""
        scope = self.scope
        plan = scope.plans.get(id(step))
        if plan is None:
            plan = await self.plan(step)
        action = plan.bound.action
        if record is not None and record.status in DONE:
            # An output stored masked (it held a secret) is read again when that is safe (a
            # read). A completed write is never repeated: its masked output is reused, and a
            # step whose input would carry the mask fails instead of sending it.
            if not (record.error == MASKED_OUTPUT and action.effect is Effect.READ):
                if record.error == MASKED_OUTPUT:
                    self.masked.add(step_key.split("[", 1)[0])
                return Outcome(record.status, record.output, attempts=record.attempts)
            record = None
        rendered = plan.render(ctx)
        if self.masked and redact.MASK in jsontext.canonical(rendered):
            names = ", ".join(sorted(self.masked))
            raise StepError(
                f"input would contain '{redact.MASK}': it uses the output of {names}, which "
                "held a secret and was stored masked, so it cannot be restored after the run "
                "that produced it stopped; retry the item to run it from the start of its "
                "unfinished steps, or keep secrets out of step outputs",
                ErrorKind.PERMANENT,
            )
        try:
            # model_validate's own call, without its Python wrapper (1.9 against 2.8 us)
            data = action.Input.__pydantic_validator__.validate_python(rendered)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "with"
            raise StepError(f"input {where}: {first['msg']}") from None
        recipe = scope.recipe.name
        key = idempotency_key(recipe, self.key, step_key)
        call = CallContext(key, recipe, step_key, self.key)
        is_write = plan.is_write
        if scope.dry_run and (is_write or scope.offline):
            return Send(step, step_key, plan, data, call, None, True, False)
        fp = fingerprint(rendered) if is_write else None
        if record is not None:
            if record.status is StepStatus.UNKNOWN:
                return Outcome(StepStatus.UNKNOWN, error=record.error, kind=ErrorKind.PERMANENT)
            if record.status is StepStatus.STARTED and is_write:
                # a previous run crashed after recording the intent: the write may have
                # happened
                if not action.retry_safe:
                    outcome = Outcome(
                        StepStatus.UNKNOWN,
                        error=f"{step.use} may or may not have happened (a run stopped while "
                        "sending it) and the action has no idempotency; check the remote "
                        f"system, then `flowkit items retry {recipe} {self.key}`",
                        kind=ErrorKind.PERMANENT,
                    )
                    self.put(step_key, outcome, idempotency_key=key, fingerprint=fp)
                    self.emit("step", step=step_key, status="unknown", message=outcome.error)
                    return outcome
                if (
                    action.idempotency is Idempotency.HEADER
                    and record.fingerprint
                    and record.fingerprint != fp
                ):
                    raise StepError(
                        f"{step.use} was started with different input under the same "
                        "idempotency key (was the recipe edited?); refusing to send a "
                        "different request",
                        ErrorKind.CONFLICT,
                    )
        if plan.intent and not scope.dry_run:
            # The intent record (key + input fingerprint) lets the next run tell "may have
            # happened" from "never sent" after a crash: a write without idempotency is then
            # reported UNKNOWN, a keyed write is repeated under its key only if its input is
            # unchanged. A naturally idempotent write (set a stock level) needs neither.
            self.put(step_key, STARTED, idempotency_key=key, fingerprint=fp)
        return Send(step, step_key, plan, data, call, fp, False, is_write)

    async def settle_before(self, sends: tuple[Send, ...] | list[Send]) -> None:
        """Settle before sending: a write goes out only once the outcomes it depends on and
        its own intent are durable."""
        try:
            await self.settle()
        except asyncio.CancelledError:
            self.withdraw(sends)
            raise

    def withdraw(self, sends: tuple[Send, ...] | list[Send]) -> None:
        """Journal writes whose intents were queued as not sent: the run is stopping (Ctrl-C,
        SIGTERM) before sending them. Otherwise the next run would find only the intent and
        report a write without idempotency "unknown"; a failed step runs again."""
        for send in sends:
            if send.settles and send.plan.intent:
                self.put(
                    send.step_key,
                    Outcome(StepStatus.FAILED, error=NOT_SENT, kind=ErrorKind.TRANSIENT),
                    idempotency_key=send.call.idempotency_key,
                    fingerprint=send.fingerprint,
                )

    async def send(self, send: Send) -> Outcome:
        """Send a prepared call (its settle done) and journal its outcome."""
        step, step_key, plan, data, call = send.step, send.step_key, send.plan, send.data, send.call
        bound = plan.bound
        if send.simulate:
            return await self.simulate(step, step_key, bound, data, call)
        send.started = True
        scope = self.scope
        action = bound.action
        is_write = plan.is_write
        key, fp = call.idempotency_key, send.fingerprint
        if is_write and not scope.dry_run:
            crashpoints.reached("before_send")
        policy = plan.policy
        started = scope.clock.now()
        try:
            try:  # most calls succeed at once: no retry machinery unless the first one fails
                if plan.direct:  # no limit, no timeout: call the action itself
                    try:
                        output = await action.run(bound.session, data, call)
                    except Exception as exc:
                        self._fail(step, plan, exc, 1)
                else:
                    output = await self.attempt(step, plan, data, call, 1)
                attempts = 1
            except ConnectorError as first:
                output, attempts = await call_with_retry(
                    lambda attempt: self.attempt(step, plan, data, call, attempt),
                    policy=policy,
                    clock=scope.clock,
                    may_retry=lambda exc: self.may_retry(bound, exc, policy.unsafe_writes),
                    on_retry=lambda n, exc, delay: self.retried(step_key, n, exc, delay),
                    rng=scope.rng,
                    first_error=first,
                    start=started,
                )
        except ConnectorError as exc:
            unknown = is_write and exc.maybe_sent and not action.retry_safe
            status = StepStatus.UNKNOWN if unknown else StepStatus.FAILED
            message = str(exc)
            if unknown:
                message += " (the outcome is unknown: the request may have been applied)"
            outcome = Outcome(
                status, error=message, kind=exc.kind, attempts=getattr(exc, "attempts", 1)
            )
            if not scope.dry_run:
                self.put(step_key, outcome, key if is_write else None, fp)
            self.emit("step", step=step_key, status=status.value, message=message)
            return outcome
        crashpoints.reached("after_send")
        outcome = Outcome(StepStatus.OK, _to_plain(output), attempts=attempts)
        if not scope.dry_run:
            self.put(step_key, outcome, key if is_write else None, fp)
            if crashpoints.active:
                await self.settle()
                crashpoints.reached("after_journal")
        if scope.listener is not ignore:
            self.emit("step", step=step_key, status="ok", data={"attempts": attempts})
        return outcome

    async def plan(self, step: Step) -> StepPlan:
        assert step.use is not None
        bound = await self.scope.connections.bind(step.use, step.connection)
        action = bound.action
        is_write = action.effect is not Effect.READ
        plan = StepPlan(
            bound=bound,
            render=compile_value(step.with_),
            is_write=is_write,
            intent=is_write and action.idempotency is not Idempotency.NATURAL,
            policy=step.retry or DEFAULT_RETRY,
            direct=bound.limit is None and step.timeout is None,
        )
        self.scope.plans[id(step)] = plan
        return plan

    def retried(self, step_key: str, attempt: int, exc: ConnectorError, delay: float) -> None:
        assert self.scope.journal is not None
        if not self.scope.dry_run:
            self.scope.journal.record_attempt(
                self.scope.recipe.name,
                self.key,
                step_key,
                self.scope.clock.now(),
                attempts=attempt,
                error=redact.redact_text(str(exc)),
                error_kind=exc.kind.value,
            )
        self.emit(
            "retry",
            step=step_key,
            status=exc.kind.value,
            message=str(exc),
            data={"attempt": attempt, "delay": delay},
        )

    def may_retry(self, bound: Bound, exc: ConnectorError, unsafe: bool) -> bool:
        # retry_safe covers reads and idempotent writes
        return not exc.maybe_sent or bound.action.retry_safe or unsafe

    async def attempt(
        self, step: Step, plan: StepPlan, data: BaseModel, call: CallContext, attempt: int
    ) -> Any:
        if attempt != 1:
            call = CallContext(call.idempotency_key, call.recipe, call.step, call.item_key, attempt)
        bound = plan.bound
        try:
            if plan.direct:
                return await bound.action.run(bound.session, data, call)
            if bound.limit is not None:
                async with bound.limit:
                    return await self._invoke(step, bound, data, call)
            return await self._invoke(step, bound, data, call)
        except Exception as exc:
            self._fail(step, plan, exc, attempt)

    def _fail(self, step: Step, plan: StepPlan, exc: Exception, attempt: int) -> NoReturn:
        """Raise what a failed attempt means to the engine: a ConnectorError (numbered), a
        timeout as one, other flowkit errors as they are, and anything else as a crash of the
        connector, which is reported and never retried."""
        if isinstance(exc, ConnectorError):
            exc.attempts = attempt  # type: ignore[attr-defined]
            raise exc
        cause: Exception | None
        if isinstance(exc, TimeoutError):
            message = f"{step.use} timed out after {step.timeout:g}s"
            kind, cause = ErrorKind.TIMEOUT, None
        elif isinstance(exc, FlowkitError):
            raise exc
        else:
            self.scope.debug(redact.redact_text(traceback.format_exc()))
            message = f"{step.use} crashed: {type(exc).__name__}: {exc}"
            kind, cause = ErrorKind.PERMANENT, exc
        err = ConnectorError(message, kind=kind, maybe_sent=plan.is_write)
        err.attempts = attempt  # type: ignore[attr-defined]
        raise err from cause

    async def _invoke(self, step: Step, bound: Bound, data: BaseModel, call: CallContext) -> Any:
        if step.timeout is not None:
            async with asyncio.timeout(step.timeout):
                return await bound.action.run(bound.session, data, call)
        return await bound.action.run(bound.session, data, call)

    async def simulate(
        self, step: Step, step_key: str, bound: Bound, data: BaseModel, call: CallContext
    ) -> Outcome:
        action = bound.action
        changes: list[Change] | None = None
        if not self.scope.offline:
            try:
                changes = await action.plan(bound.session, data, call)
            except ConnectorError as exc:
                self.emit("step", step=step_key, status="failed", message=f"plan failed: {exc}")
                return Outcome(StepStatus.FAILED, error=str(exc), kind=exc.kind)
        output = _to_plain(action.simulate(data, call))
        self.emit(
            "plan",
            step=step_key,
            status=action.effect.value,
            data={
                "use": step.use,
                "connection": bound.connection,
                "input": redact.redact(data.model_dump(mode="json", by_alias=True)),
                "key": call.idempotency_key if action.effect is not Effect.READ else None,
                "changes": [c.format() for c in changes] if changes is not None else None,
            },
        )
        return Outcome(StepStatus.OK, output, attempts=0)

    # failure hooks ----------------------------------------------------------------------
    async def run_hooks(self, step_id: str, outcome: Outcome) -> None:
        scope = self.scope
        hooks = scope.recipe.on_failure
        if not hooks:
            return
        failures = self.record.failures + 1
        error = {
            "step": step_id,
            "message": outcome.error,
            "kind": outcome.kind.value if outcome.kind else None,
            "failures": failures,
            "final": failures >= scope.recipe.max_item_failures,
        }
        for hook in hooks:
            key = f"on_failure.{hook.id}#{failures}"
            record = self.journal.get(key)
            try:
                ctx = self.context(error=error)
                if hook.if_ is not None and not bool(
                    compile_template(hook.if_).render(ctx)
                    if isinstance(hook.if_, str)
                    else hook.if_
                ):
                    continue
                result = await self.call(hook, key, ctx, record)
                status = "ok" if result.status is StepStatus.OK else "failed"
                self.emit("hook", step=hook.id, status=status, message=result.error)
            except (StepError, ExpressionError, PluginError, ConnectorError) as exc:
                self.emit("hook", step=hook.id, status="failed", message=str(exc))
