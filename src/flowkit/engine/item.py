"""One item's step graph, run on the journal: the ready steps of each wave prepared, settled
once and sent together; waits parked, fan-outs spread over their list, failure hooks run when
the item fails. The calls themselves and the exactly-once rules are `flowkit.engine.call`'s.
"""

from __future__ import annotations

import asyncio
from typing import Any

from flowkit import redact
from flowkit.engine.call import ItemCalls
from flowkit.engine.events import ignore
from flowkit.engine.scope import (
    DONE,
    MASKED_OUTPUT,
    ItemResult,
    Outcome,
    PlainWave,
    Send,
    StepError,
    resume,
)
from flowkit.errors import ConnectorError, ErrorKind, ExpressionError, PluginError
from flowkit.expressions import compile_template
from flowkit.recipe.models import OnError, Step
from flowkit.state.base import (
    ItemStatus,
    StepRecord,
    StepStatus,
)


class ItemRun(ItemCalls):
    """One item's step graph: waves of ready steps, waits, fan-outs, failure hooks."""

    # the graph --------------------------------------------------------------------------
    async def run(self) -> ItemResult:
        scope = self.scope
        if self._prefetched is not None:
            self.journal = self._prefetched
        else:
            self.journal = await scope.store.get_steps(scope.name, self.key)
        if scope.listener is not ignore:
            self.emit("item_started")
        done: set[str] = set()
        blocked = False
        # An item with nothing journaled runs its plain waves (`PlainWave`) on the short path
        # while every step succeeds; the first wave that is not plain, or fails, and every
        # wave after it take the general one.
        plain = not self.journal
        # While every step completes, the ready sets are the run's precomputed waves; from the
        # first step that waits or fails on, they are worked out from what completed.
        for index, wave in enumerate(scope.waves):
            if blocked or len(done) != len(self.outcomes):
                break
            if plain:
                short = scope.plain_wave(index)
                outcomes = await self.run_plain(short) if short is not None else None
                if outcomes is not None:
                    blocked = self.record_outcomes(wave, outcomes, done)
                    plain = self.all_ok
                    continue
                plain = False
            blocked = await self.run_ready(wave, done)
        graph = scope.graph
        if len(self.outcomes) == len(graph.order):  # every step ran along the waves
            return self.finish() or await self.finish_failed()
        remaining = [s for s in graph.order if s not in self.outcomes]
        while remaining and not blocked:
            # steps whose dependencies are waiting (or failed) are not ready: stop there
            ready = [s for s in remaining if graph.deps[s] <= done]
            if not ready:
                break
            remaining = [s for s in remaining if s not in ready]
            blocked = await self.run_ready(tuple(scope.by_id[s] for s in ready), done)
        return self.finish() or await self.finish_failed()

    async def run_ready(self, steps: tuple[Step, ...], done: set[str]) -> bool:
        """Run steps whose dependencies completed, record their outcomes, add the completed
        ones to `done`; True when one failed in a way that stops the item."""
        if len(steps) == 1:
            outcomes = [await self.run_step(steps[0])]
        elif self.scope.fan_out and any(step.for_each is not None for step in steps):
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
        return self.record_outcomes(steps, outcomes, done)

    def record_outcomes(
        self, steps: tuple[Step, ...], outcomes: list[Outcome], done: set[str]
    ) -> bool:
        """Keep the outcomes of a wave for the steps after it (the `steps` context) and for
        `finish`; add the completed steps to `done`; True when one failed in a way that
        stops the item. A step that did not succeed clears `all_ok`."""
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
            if status is StepStatus.OK:
                done.add(step_id)
                continue
            self.all_ok = False
            if status is StepStatus.SKIPPED or (
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

        Reads need no settle: a wave with writes to settle and reads beside them goes to
        `mixed_wave`, which sends the reads while the writes wait for the commit.
        """
        prepared: list[Outcome | Send] = []
        sends: list[Send] = []
        settles = reads = False
        for step in steps:
            ready = self.prepare_step(step)
            if ready is None:
                ready = await self.prepare_later(step)
            prepared.append(ready)
            if type(ready) is Send:
                sends.append(ready)
                if ready.settles:
                    settles = True
                else:
                    reads = True
        if not sends:
            return prepared  # type: ignore[return-value]
        if settles and self.pending:
            if reads:
                return await self.mixed_wave(prepared, sends)
            await self.settle(sends)
        sent = await self.send_all(sends)
        if len(sent) == len(prepared):  # every step was sent
            return sent
        results = iter(sent)
        return [next(results) if type(p) is Send else p for p in prepared]  # type: ignore[misc]

    async def send_all(self, sends: list[Send]) -> list[Outcome]:
        """Send the calls of a wave, settled, concurrently as `run_wave` says; their outcomes
        in order."""
        sent: list[Outcome] = []
        others: list[asyncio.Task[Outcome]] = []
        last = len(sends) - 1
        try:
            for index, send in enumerate(sends):
                if index == last:  # nothing left to start beside it: it simply runs here
                    try:
                        sent.append(await self.send(send))
                    except (StepError, ExpressionError, PluginError) as exc:
                        sent.append(self.step_failed(send.step_key, exc))
                    break
                coro = self.send(send)
                try:
                    waits_for = coro.send(None)  # runs in this task, up to its first wait
                except StopIteration as done:
                    sent.append(done.value)
                    continue
                except (StepError, ExpressionError, PluginError) as exc:
                    sent.append(self.step_failed(send.step_key, exc))
                    continue
                loop = asyncio.get_running_loop()
                others = [loop.create_task(self.send_step(s)) for s in sends[index + 1 :]]
                try:
                    sent.append(await resume(coro, waits_for))
                except (StepError, ExpressionError, PluginError) as exc:
                    sent.append(self.step_failed(send.step_key, exc))
                sent.extend([await task for task in others])
                break
        except BaseException:
            for task in others:
                task.cancel()  # a task cancelled before its first step never starts
            # The run is stopping (or a step crashed): the writes that were never started
            # were not sent, and their intents are durable; say so, as `settle` does.
            self.withdraw([s for s in sends if not s.started])
            raise
        return sent

    async def run_plain(self, wave: PlainWave) -> list[Outcome] | None:
        """A plain wave of an item with nothing journaled: `run_wave` without the checks that
        cannot apply (no stored record to reuse or resume, no condition, no wait, no fan-out,
        every dependency succeeded, the connections bound). None, with nothing done, when an
        input fails to render or validate: `run_wave` then reports it as it does.

        The steps' inputs are all rendered and validated before anything is journaled, so
        the general path can take over without a trace; from there on it is `prepare`'s own
        end (`to_send`: key, intent, Send), the same settle and the same sends (`send_all`)
        as `run_wave`'s."""
        ctx = self.context()
        inputs = []
        try:
            for _step_id, _step, plan in wave.entries:
                rendered = plan.render(ctx)
                inputs.append((rendered, plan.validate(rendered)))
        except Exception:  # the general path renders the wave again and says what failed
            return None
        sends: list[Send] = []
        for (step_id, step, plan), (rendered, data) in zip(wave.entries, inputs, strict=True):
            # no record and no dry run: a Send, its intent queued
            sends.append(self.to_send(step, plan, step_id, rendered, data, None))  # type: ignore[arg-type]
        if wave.settles and self.pending:
            await self.settle(sends)
        if len(sends) > 1:
            return await self.send_all(sends)
        send = sends[0]  # `send_all` of one send, without its frame
        try:
            return [await self.send(send)]
        except (StepError, ExpressionError, PluginError) as exc:
            return [self.step_failed(send.step_key, exc)]

    async def mixed_wave(self, prepared: list[Outcome | Send], sends: list[Send]) -> list[Outcome]:
        """A wave with writes to settle and reads beside them: the reads start at once, in
        tasks of their own, and the writes once their intents (and the outcomes they depend
        on) are durable; a read does not wait one commit for nothing. A task per send costs
        a little more than `run_wave`'s sends in the item's own task; such waves are rare."""
        reads = [s for s in sends if not s.settles]
        writes = [s for s in sends if s.settles]
        # The writes wait for what is queued now; the reads' outcomes queue apart, so that
        # the writes do not wait for them (a later step that needs a read does).
        held, self.pending = self.pending, []
        loop = asyncio.get_running_loop()
        early = [loop.create_task(self.send_step(s)) for s in reads]
        try:
            await self.settle(writes, held)  # withdraws the writes if the run stops meanwhile
        except BaseException:
            for task in early:
                task.cancel()
            raise
        later = [loop.create_task(self.send_step(s)) for s in writes]
        outcome: dict[int, Outcome] = {}
        try:
            for send, task in zip([*reads, *writes], [*early, *later], strict=True):
                outcome[id(send)] = await task
        except BaseException:
            for task in (*early, *later):
                task.cancel()  # a task cancelled before its first step never starts
            self.withdraw([s for s in writes if not s.started])
            raise
        return [outcome[id(p)] if type(p) is Send else p for p in prepared]  # type: ignore[misc]

    def finish(self) -> ItemResult | None:
        """Journal the item's status from its steps' outcomes and return its result; None
        when it failed (`finish_failed`, which runs the failure hooks, waits). Synchronous:
        most items end done, and a coroutine more per item costs more than the check."""
        scope = self.scope
        journal = scope.journal
        assert journal is not None
        waiting: list[float | None] = []
        if self.all_ok:  # every step succeeded (most items): nothing to look for
            statuses = dict.fromkeys(self.outcomes, StepStatus.OK._value_)
        else:
            statuses = {}
            for k, o in self.outcomes.items():
                statuses[k] = o.status._value_
                if o.status is StepStatus.WAITING:
                    waiting.append(o.wake_at)
                elif self.fails_item(k, o):
                    return None
        now = scope.clock.now()
        if waiting:
            wake_at = min(w for w in waiting if w is not None)
            self._queued(
                journal.enqueue_item(scope.name, self.key, ItemStatus.WAITING, now, wake_at=wake_at)
            )
            result = ItemResult(self.key, ItemStatus.WAITING, wake_at=wake_at, steps=statuses)
        else:
            self._queued(journal.enqueue_item(scope.name, self.key, ItemStatus.DONE, now))
            result = ItemResult(self.key, ItemStatus.DONE, None, None, statuses)
        return self.finished(result)

    def fails_item(self, step_id: str, outcome: Outcome) -> bool:
        """Whether this step's outcome fails its item: unknown, or failed with
        `on_error: fail`."""
        status = outcome.status
        return status is StepStatus.UNKNOWN or (
            status is StepStatus.FAILED and self.scope.by_id[step_id].on_error is OnError.FAIL
        )

    async def finish_failed(self) -> ItemResult:
        """`finish` for an item that failed: its first step that fails the item (in step
        order) is its error; the failure hooks run."""
        scope = self.scope
        statuses = {k: o.status._value_ for k, o in self.outcomes.items()}
        step_id, outcome = next((k, o) for k, o in self.outcomes.items() if self.fails_item(k, o))
        error = f"step {step_id}: {outcome.error}"
        self._queued(
            scope.journal.enqueue_item(  # type: ignore[union-attr]
                scope.name,
                self.key,
                ItemStatus.FAILED,
                scope.clock.now(),
                error=redact.redact_text(error),
            )
        )
        result = ItemResult(self.key, ItemStatus.FAILED, error=error, steps=statuses)
        await self.run_hooks(step_id, outcome)
        return self.finished(result)

    def finished(self, result: ItemResult) -> ItemResult:
        # Not settled here: the run drains the journal before it reports (Journal.drain),
        # which raises a failed commit; the item only frees its concurrency slot sooner.
        self.pending = []
        if self.scope.listener is not ignore:
            self.emit(
                "item_finished",
                status=result.status.value,
                message=result.error,
                data={"wake_at": result.wake_at},
            )
        return result

    # one step ---------------------------------------------------------------------------
    async def run_step(self, step: Step) -> Outcome:
        prepared = self.prepare_step(step)
        if prepared is None:
            prepared = await self.prepare_later(step)
        if type(prepared) is Outcome:
            return prepared
        assert isinstance(prepared, Send)
        if prepared.settles and self.pending:
            await self.settle((prepared,))
        try:
            return await self.send(prepared)
        except (StepError, ExpressionError, PluginError) as exc:
            return self.step_failed(prepared.step_key, exc)

    def prepare_step(self, step: Step) -> Outcome | Send | None:
        """A step's outcome when it needs no call (reused, skipped, failed before sending, a
        wait), else its call worked out up to sending; None when it must wait for something
        first (`prepare_later`): its connection, at its first call in the run, or a fan-out.

        Synchronous, like `prepare`: a coroutine per step costs more than the rare wait."""
        step_id = step.id
        record = self.journal.get(step_id)
        if (
            record is not None
            and record.status in DONE
            and not (record.error == MASKED_OUTPUT and step.use is not None)
        ):
            self.emit("step", step=step_id, status="reused", data={"attempts": 0})
            return Outcome(record.status, record.output, None, None, None, record.attempts)
        outcomes = self.outcomes
        scope = self.scope
        for dep in scope.graph.deps[step_id]:
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
                return self.wait_step(step, record)
            plan = scope.plans.get(id(step))
            if plan is None or step.for_each is not None:
                return None
            return self.prepare(step, plan, step_id, self.context(), record)
        except (StepError, ExpressionError, PluginError) as exc:
            return self.step_failed(step.id, exc)

    async def prepare_later(self, step: Step) -> Outcome | Send:
        """`prepare_step`'s end for a step that waits first: a whole fan-out, or the step's
        first call in the run, which binds its connection (`plan`) and then prepares."""
        try:
            if step.for_each is not None:
                return await self.fan_out(step)
            plan = await self.plan(step)
            return self.prepare(step, plan, step.id, self.context(), self.journal.get(step.id))
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

    def wait_step(self, step: Step, record: StepRecord | None) -> Outcome:
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
