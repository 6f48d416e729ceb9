"""One item's connector calls and journal: the exactly-once core.

For every step the journal (state store) is consulted first: a step already OK or SKIPPED is
never repeated (its stored output is reused). Every call carries an idempotency key derived
from (recipe, item key, step key), so a crash between sending and journaling leads to a repeat
under the SAME key, which an idempotent action (Stripe `Idempotency-Key`, QuickBooks
`requestid`, a PUT of a stock level) absorbs. Writes other than naturally idempotent ones are
preceded by an intent record (STARTED, with the key and a fingerprint of the input): after a
crash the next run finds it and either repeats the write under the same key (only if the input
is unchanged) or, for an action without idempotency, reports the step UNKNOWN for a human to
check instead of sending it twice.

`flowkit.engine.item.ItemRun` builds on `ItemCalls` to walk an item's step graph.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Mapping
from typing import Any, NoReturn

from pydantic import BaseModel, ValidationError

from flowkit import jsontext, redact
from flowkit.connectors.base import (
    CallContext,
    Change,
    Effect,
    Idempotency,
    idempotency_key,
)
from flowkit.engine import crashpoints
from flowkit.engine.connections import Bound
from flowkit.engine.events import Event, ignore
from flowkit.engine.retry import DEFAULT_RETRY, call_with_retry
from flowkit.engine.scope import (
    DONE,
    MASKED_OUTPUT,
    NOT_SENT,
    Outcome,
    RunScope,
    Send,
    StepError,
    StepPlan,
    fingerprint,
    make_tuple,
    to_plain,
)
from flowkit.errors import ConnectorError, ErrorKind, FlowkitError
from flowkit.expressions.template import compile_value
from flowkit.recipe.models import Step
from flowkit.state.base import (
    ItemRecord,
    StepRecord,
    StepStatus,
    StepWrite,
)


class ItemCalls:
    """One item's journal and connector calls: render, validate, key, intent, send with
    retries, journal the outcome. `ItemRun` walks the step graph on top of it."""

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
        self.all_ok = True  # every step so far succeeded (`ItemRun.record_outcomes`)

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
                recipe=self.scope.name,
                run_id=self.scope.run_id,
                item=self.key,
                **kw,
            )
        )

    # journal ----------------------------------------------------------------------------
    async def settle(
        self,
        sends: tuple[Send, ...] | list[Send] = (),
        pending: list[asyncio.Future[None]] | None = None,
    ) -> None:
        """Wait until every journal change this item queued so far is durable.

        Several steps of an item may settle at once: each waits for all queued changes
        (shared `Batch` futures, which a cancelled waiter cannot cancel), not only for those
        no other step awaits. The first failed batch's error is raised.

        `sends` are the writes this settle clears for sending (their dependencies' outcomes
        and their own intents): if the run stops (cancelled) while they wait, they are
        withdrawn (`withdraw`). One coroutine for both, not a wrapper: every suspension of an
        item resumes through each coroutine between its task and the future it awaits.

        `pending` is a list of changes to wait for that is no longer the item's own
        (`ItemRun.mixed_wave` sets it aside so that the outcomes of reads sent meanwhile
        queue apart, for the next settle).
        """
        if pending is None:
            pending = self.pending
        for future in pending:  # other steps of this item may append while this one waits
            if not future.done():
                try:
                    await future
                except asyncio.CancelledError:
                    self.withdraw(sends)
                    raise
                except BaseException:  # raised below, in queue order
                    pass
        if self.pending is pending:
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
        kind = outcome.kind
        self.journal_step(
            step_key,
            outcome.status,
            outcome.output,
            outcome.attempts,
            outcome.error,
            kind._value_ if kind is not None else None,
            idempotency_key,
            fingerprint,
        )

    def journal_step(
        self,
        step_key: str,
        status: StepStatus,
        output: Any,
        attempts: int,
        error: str | None,
        error_kind: str | None,
        idempotency_key: str | None,
        fingerprint: str | None,
    ) -> None:
        """`put`'s work, from the outcome's fields (positional: the hot path calls it three
        times per step and item without building an `Outcome` first)."""
        error = redact.redact_text(error) if error else None
        if output is not None and redact.active:
            masked = redact.redact(output)
            if masked != output and status is StepStatus.OK:
                # the stored output lost a secret: a resumed item must not render the mask
                error = MASKED_OUTPUT
            output = masked
        scope = self.scope
        batch = scope.journal.enqueue(  # type: ignore[union-attr]
            make_tuple(
                StepWrite,
                (
                    scope.name,
                    self.key,
                    step_key,
                    status,
                    scope.clock.now(),
                    output,
                    attempts,
                    error,
                    error_kind,
                    idempotency_key,
                    fingerprint,
                    False,
                ),
            )
        )
        self._queued(batch)

    # the call ---------------------------------------------------------------------------
    async def call(
        self, step: Step, step_key: str, ctx: Mapping[str, Any], record: StepRecord | None
    ) -> Outcome:
        plan = self.scope.plans.get(id(step)) or await self.plan(step)
        prepared = self.prepare(step, plan, step_key, ctx, record)
        if type(prepared) is Outcome:
            return prepared
        assert isinstance(prepared, Send)
        if prepared.settles and self.pending:
            await self.settle((prepared,))
        return await self.send(prepared)

    def prepare(
        self,
        step: Step,
        plan: StepPlan,
        step_key: str,
        ctx: Mapping[str, Any],
        record: StepRecord | None,
    ) -> Outcome | Send:
        """Everything before sending: render and validate the input, derive the key, and
        queue the intent of a write. An Outcome when there is nothing to send.

        Synchronous: the one thing to wait for, binding the step's connection (`plan`), is
        done by the caller on the step's first call only."""
        if record is not None and record.status in DONE:
            # An output stored masked (it held a secret) is read again when that is safe (a
            # read). A completed write is never repeated: its masked output is reused, and a
            # step whose input would carry the mask fails instead of sending it.
            if not (record.error == MASKED_OUTPUT and not plan.is_write):
                if record.error == MASKED_OUTPUT:
                    self.masked.add(step_key.split("[", 1)[0])
                return make_tuple(
                    Outcome, (record.status, record.output, None, None, None, record.attempts)
                )
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
            data = plan.validate(rendered)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "with"
            raise StepError(f"input {where}: {first['msg']}") from None
        return self.to_send(step, plan, step_key, rendered, data, record)

    def to_send(
        self,
        step: Step,
        plan: StepPlan,
        step_key: str,
        rendered: Any,
        data: BaseModel,
        record: StepRecord | None,
    ) -> Outcome | Send:
        """`prepare`'s end, from the rendered and validated input: derive the key, check what
        an earlier run left unfinished (`record`), and queue the intent of a write. Also the
        end of `ItemRun.run_plain`, which validates a wave's inputs itself."""
        scope = self.scope
        recipe = scope.name
        key = idempotency_key(recipe, self.key, step_key)
        call = make_tuple(CallContext, (key, recipe, step_key, self.key, 1))
        is_write = plan.is_write
        if scope.dry_run and (is_write or scope.offline):
            return Send(step, step_key, plan, data, call, None, True, False)
        fp = fingerprint(rendered) if is_write else None
        if record is not None:
            resumed = self.resumed(step, step_key, plan, record, key, fp)
            if resumed is not None:
                return resumed
        if plan.intent and not scope.dry_run:
            # The intent record (key + input fingerprint) lets the next run tell "may have
            # happened" from "never sent" after a crash: a write without idempotency is then
            # reported UNKNOWN, a keyed write is repeated under its key only if its input is
            # unchanged. A naturally idempotent write (set a stock level) needs neither.
            self.journal_step(step_key, StepStatus.STARTED, None, 0, None, None, key, fp)
        return Send(step, step_key, plan, data, call, fp, False, is_write)

    def resumed(
        self,
        step: Step,
        step_key: str,
        plan: StepPlan,
        record: StepRecord,
        key: str,
        fp: str | None,
    ) -> Outcome | None:
        """What an earlier run's unfinished record of this step means before sending: an
        Outcome when it must not be sent (unknown), None to send it (under the same key)."""
        if record.status is StepStatus.UNKNOWN:
            return Outcome(StepStatus.UNKNOWN, error=record.error, kind=ErrorKind.PERMANENT)
        if record.status is StepStatus.STARTED and plan.is_write:
            # a previous run crashed after recording the intent: the write may have happened
            action = plan.bound.action
            if not action.retry_safe:
                outcome = Outcome(
                    StepStatus.UNKNOWN,
                    error=f"{step.use} may or may not have happened (a run stopped while "
                    "sending it) and the action has no idempotency; check the remote "
                    f"system, then `flowkit items retry {self.scope.recipe.name} {self.key}`",
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
        return None

    def withdraw(self, sends: tuple[Send, ...] | list[Send]) -> None:
        """Journal writes whose intents were queued as not sent: the run is stopping (Ctrl-C,
        SIGTERM) before sending them. Otherwise the next run would find only the intent and
        report a write without idempotency "unknown"; a failed step runs again. A write is
        sent only once the outcomes it depends on and its own intent are durable (`settle`)."""
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
        plan = send.plan
        if send.simulate:
            return await self.simulate(send.step, send.step_key, plan.bound, send.data, send.call)
        send.started = True
        scope = self.scope
        is_write = plan.is_write
        if crashpoints.active and is_write and not scope.dry_run:
            crashpoints.reached("before_send")
        started = scope.clock.now()
        try:  # most calls succeed at once: no retry machinery unless the first one fails
            if plan.direct:  # no limit, no timeout: call the action itself
                bound = plan.bound
                output = await bound.action.run(bound.session, send.data, send.call)
            else:
                output = await self.attempt(send.step, plan, send.data, send.call, 1)
            attempts = 1
        except Exception as exc:
            retried = await self.retry(send, exc, started)
            if type(retried) is Outcome:
                return retried
            output, attempts = retried  # type: ignore[misc]
        if crashpoints.active:
            crashpoints.reached("after_send")
        output = to_plain(output)
        if not scope.dry_run:
            key = send.call.idempotency_key if is_write else None
            self.journal_step(
                send.step_key, StepStatus.OK, output, attempts, None, None, key, send.fingerprint
            )
            if crashpoints.active:
                await self.settle()
                crashpoints.reached("after_journal")
        if scope.listener is not ignore:
            self.emit("step", step=send.step_key, status="ok", data={"attempts": attempts})
        return make_tuple(Outcome, (StepStatus.OK, output, None, None, None, attempts))

    async def retry(
        self, send: Send, first: Exception, started: float
    ) -> Outcome | tuple[Any, int]:
        """After a failed first attempt (`first`, raised inside the `except` that handles it):
        retry it as its policy allows; the output and attempts of the one that succeeds, or
        the failed Outcome, journaled. Errors that are not the connector's are raised."""
        step, step_key, plan, data, call = send.step, send.step_key, send.plan, send.data, send.call
        scope = self.scope
        bound = plan.bound
        policy = plan.policy
        try:
            try:
                self._fail(step, plan, first, 1)  # a ConnectorError, or a flowkit error raised
            except ConnectorError as error:
                return await call_with_retry(
                    lambda attempt: self.attempt(step, plan, data, call, attempt),
                    policy=policy,
                    clock=scope.clock,
                    may_retry=lambda exc: self.may_retry(bound, exc, policy.unsafe_writes),
                    on_retry=lambda n, exc, delay: self.retried(step_key, n, exc, delay),
                    rng=scope.rng,
                    first_error=error,
                    start=started,
                )
        except ConnectorError as exc:
            is_write = plan.is_write
            unknown = is_write and exc.maybe_sent and not bound.action.retry_safe
            status = StepStatus.UNKNOWN if unknown else StepStatus.FAILED
            message = str(exc)
            if unknown:
                message += " (the outcome is unknown: the request may have been applied)"
            outcome = Outcome(
                status, error=message, kind=exc.kind, attempts=getattr(exc, "attempts", 1)
            )
            if not scope.dry_run:
                key = call.idempotency_key if is_write else None
                self.put(step_key, outcome, key, send.fingerprint)
            self.emit("step", step=step_key, status=status.value, message=message)
            return outcome

    async def plan(self, step: Step) -> StepPlan:
        assert step.use is not None
        bound = await self.scope.connections.bind(step.use, step.connection)
        action = bound.action
        is_write = action.effect is not Effect.READ
        plan = StepPlan(
            bound=bound,
            render=compile_value(step.with_),
            # model_validate's own call, without its Python wrapper (1.9 against 2.8 us)
            validate=action.Input.__pydantic_validator__.validate_python,
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
        output = to_plain(action.simulate(data, call))
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
