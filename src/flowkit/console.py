"""The one place that prints run output: rich on a terminal, plain lines otherwise, or JSON.

Every line passes through the secret masker. `--quiet` buffers everything and prints only when
the run did not succeed, so cron mails only on problems. Dry-run plans are always shown.
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any

from flowkit import redact
from flowkit.engine.events import Event


def _ts(now: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now if now is not None else time.time()))


def _compact(value: Any, limit: int = 2000) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class RunConsole:
    """Renders engine events. `fmt` is "text" or "json"; `tty` enables the live view."""

    def __init__(
        self,
        fmt: str = "text",
        quiet: bool = False,
        stream: IO[str] | None = None,
        tty: bool | None = None,
        dry_run: bool = False,
    ) -> None:
        self.fmt = fmt
        self.quiet = quiet
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.dry_run = dry_run
        self.buffer: list[str] = []
        self.counts: dict[str, int] = {"done": 0, "failed": 0, "waiting": 0}
        self.step_counts: dict[str, dict[str, int]] = {}
        self._live: Any = None
        self._progress: Any = None

    # output -----------------------------------------------------------------------------
    def write(self, line: str, force: bool = False) -> None:
        line = redact.redact_text(line)
        if self.quiet and not force:
            self.buffer.append(line)
            return
        if self._live is not None:
            self._live.console.print(line, markup=False, highlight=False, soft_wrap=True)
            return
        self.stream.write(line + "\n")
        self.stream.flush()

    def start(self) -> None:
        if self.dry_run:
            self.write(
                "DRY RUN: reads are real, writes are shown and NOT sent; "
                "the state store is not changed",
                force=True,
            )
        if self.tty and self.fmt == "text" and not self.quiet:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(
                self._render(),
                console=Console(file=self.stream),
                refresh_per_second=8,
                transient=True,
            )
            self._live.start()

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _render(self) -> Any:
        from rich.table import Table

        table = Table(box=None, show_header=True, header_style="bold")
        table.add_column("step")
        for column in ("ok", "skipped", "failed", "waiting", "retries"):
            table.add_column(column, justify="right")
        for step, counts in self.step_counts.items():
            table.add_row(
                step,
                *(str(counts.get(c, 0)) for c in ("ok", "skipped", "failed", "waiting", "retry")),
            )
        table.caption = (
            f"items: {self.counts['done']} done, {self.counts['failed']} failed, "
            f"{self.counts['waiting']} waiting"
        )
        return table

    # events -----------------------------------------------------------------------------
    def __call__(self, event: Event) -> None:
        if event.kind == "item_finished" and event.status in self.counts:
            self.counts[event.status] += 1
        if event.kind in ("step", "retry") and event.step:
            base = event.step.split("[", 1)[0]
            bucket = self.step_counts.setdefault(base, {})
            name = "retry" if event.kind == "retry" else (event.status or "")
            name = "ok" if name == "reused" else name
            bucket[name] = bucket.get(name, 0) + 1
        if self.fmt == "json":
            record = {
                "ts": _ts(),
                "event": event.kind,
                "recipe": event.recipe,
                "run": event.run_id,
                "item": event.item,
                "step": event.step,
                "status": event.status,
                "message": event.message,
                **({"data": event.data} if event.data else {}),
            }
            self.write(
                json.dumps(redact.redact(record), default=str, separators=(",", ":")),
                force=event.kind == "plan",
            )
            return
        if event.kind == "plan":
            self._plan(event)
            return
        line = self._line(event)
        if line is not None:
            self.write(line)
        if self._live is not None:
            self._live.update(self._render())

    def _line(self, event: Event) -> str | None:
        parts = [_ts(), event.recipe]
        if event.item is not None:
            parts.append(f"item={event.item}")
        if event.step is not None:
            parts.append(f"step={event.step}")
        kind = event.kind
        if kind == "run_started":
            return f"{_ts()} {event.recipe} run={event.run_id} started"
        if kind == "trigger":
            if event.status == "failed":
                return " ".join([*parts, "trigger FAILED:", event.message or ""])
            return " ".join(
                [*parts, f"trigger listed={event.data.get('listed')} new={event.data.get('new')}"]
            )
        if kind == "item_started":
            return None if self.tty else " ".join([*parts, "started"])
        if kind == "step":
            status = event.status or ""
            if self.tty and status in ("ok", "reused", "skipped"):
                return None
            extra = ""
            if event.data.get("attempts", 0) > 1:
                extra = f" attempts={event.data['attempts']}"
            if event.data.get("wake_at"):
                extra += f" until={_ts(event.data['wake_at'])}"
            msg = f": {event.message}" if event.message else ""
            return (
                " ".join([*parts, status.upper() if status in ("failed", "unknown") else status])
                + extra
                + msg
            )
        if kind == "retry":
            delay = event.data.get("delay", 0.0)
            return " ".join(
                [
                    *parts,
                    f"retry attempt={event.data.get('attempt')} "
                    f"after={delay:.1f}s ({event.status}): {event.message}",
                ]
            )
        if kind == "item_finished":
            if event.status == "failed":
                return " ".join([*parts, f"item FAILED: {event.message}"])
            if event.status == "waiting":
                return " ".join([*parts, f"item waiting until {_ts(event.data.get('wake_at'))}"])
            return None if self.tty else " ".join([*parts, "item done"])
        if kind == "hook":
            return " ".join([*parts, f"on_failure hook {event.status}"]) + (
                f": {event.message}" if event.message else ""
            )
        return None

    def _plan(self, event: Event) -> None:
        data = event.data
        verb = {"write": "would write", "notify": "would notify", "read": "would read"}.get(
            event.status or "", "would call"
        )
        head = f"  {verb:<12} {data.get('use')}  item={event.item}  step={event.step}"
        if data.get("key"):
            head += f"  idempotency-key={data['key']}"
        self.write(head, force=True)
        changes = data.get("changes")
        if changes is not None:
            if not changes:
                self.write("      no change", force=True)
            for change in changes:
                self.write(f"      ~ {change}", force=True)
        else:
            self.write(f"      {_compact(data.get('input'))}", force=True)

    # the end ----------------------------------------------------------------------------
    def finish(self, summary: dict[str, Any], exit_code: int) -> None:
        self.stop()
        if self.quiet and exit_code != 0:
            for line in self.buffer:
                self.stream.write(line + "\n")
        if self.quiet and exit_code == 0:
            return
        if self.fmt == "json":
            record = {"ts": _ts(), "event": "summary", "exit_code": exit_code, **summary}
            self.write(json.dumps(redact.redact(record), default=str), force=True)
            return
        prefix = "DRY RUN " if summary.get("dry_run") else ""
        text = (
            f"{prefix}run {summary['run_id']} {summary['status']}: "
            f"{summary['new']} new item(s) of {summary['listed']} listed; "
            f"{summary['processed']} processed: {summary['done']} done, "
            f"{summary['failed']} failed, {summary['waiting']} waiting"
        )
        if summary.get("dry_run"):
            text += f"; {summary['planned']} write(s) shown, none sent"
        text += f" ({summary['duration']:.1f}s)"
        self.write(text, force=True)
        if summary.get("trigger_error"):
            self.write(f"  trigger failed: {summary['trigger_error']}", force=True)
        for error in summary.get("errors", [])[:10]:
            self.write(f"  {error}", force=True)
        if summary.get("failed"):
            self.write(
                "  see `flowkit items list --status failed`; retry with "
                "`flowkit items retry RECIPE KEY`",
                force=True,
            )
