"""The journal: an intent row is committed before every external call, then marked done or failed.

After a crash, intent rows without an outcome plus ``provider.list`` by labels tell what may exist.
``checkpoint`` is the fault-injection hook of the crash tests: ORCH_FAULT_AT=N SIGKILLs the process at
the Nth checkpoint; ORCH_FAULT_LOG=path appends each checkpoint's name (to count them in a clean run).
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.state.db import StateDB, utcnow
from orchestrator.state.models import JournalEntry

_checkpoints = 0


def checkpoint(name: str) -> None:
    """A point where a crash is survivable; killed here when ORCH_FAULT_AT says so (tests only)."""
    global _checkpoints
    _checkpoints += 1
    log = os.environ.get("ORCH_FAULT_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{_checkpoints} {name}\n")
    at = os.environ.get("ORCH_FAULT_AT")
    if at and at.isdigit() and int(at) == _checkpoints:
        os.kill(os.getpid(), signal.SIGKILL)


def _detail(detail: str | dict[str, Any] | None) -> str | None:
    if detail is None or isinstance(detail, str):
        return detail
    return json.dumps(detail, sort_keys=True, default=str)


class Journal:
    def __init__(self, db: StateDB, project: str) -> None:
        self.db = db
        self.project = project

    def intent(
        self, action: str, replica_id: str | None, provider: str | None, detail: str | dict[str, Any] | None = None,
        also: Callable[[Session], None] | None = None,
    ) -> int:
        """Commit an intent row (and ``also``'s writes, in the same transaction); return its id."""
        with self.db.session() as s:
            row = JournalEntry(
                project=self.project, ts=utcnow(), action=action, replica_id=replica_id,
                provider=provider, status="intent", detail=_detail(detail),
            )
            s.add(row)
            if also is not None:
                also(s)
            s.flush()
            return row.id

    def _finish(self, entry_id: int, status: str, detail: str | dict[str, Any] | None,
                also: Callable[[Session], None] | None) -> None:
        with self.db.session() as s:
            row = s.get(JournalEntry, entry_id)
            if row is None:
                return
            row.status = status
            row.ts = utcnow()
            if detail is not None:
                row.detail = _detail(detail)
            if also is not None:
                also(s)

    def done(self, entry_id: int, detail: str | dict[str, Any] | None = None,
             also: Callable[[Session], None] | None = None) -> None:
        self._finish(entry_id, "done", detail, also)

    def failed(self, entry_id: int, detail: str | dict[str, Any] | None = None,
               also: Callable[[Session], None] | None = None) -> None:
        self._finish(entry_id, "failed", detail, also)

    def record(
        self, action: str, replica_id: str | None, provider: str | None, detail: str | dict[str, Any] | None = None,
        status: str = "done", also: Callable[[Session], None] | None = None,
    ) -> int:
        """A completed event with no external call of its own (adopt, fallback)."""
        with self.db.session() as s:
            row = JournalEntry(
                project=self.project, ts=utcnow(), action=action, replica_id=replica_id,
                provider=provider, status=status, detail=_detail(detail),
            )
            s.add(row)
            if also is not None:
                also(s)
            s.flush()
            return row.id

    def pending(self) -> list[JournalEntry]:
        """Intent rows with no outcome: a previous run died between the intent and the result."""
        with self.db.session() as s:
            rows = list(
                s.scalars(
                    select(JournalEntry)
                    .where(JournalEntry.project == self.project, JournalEntry.status == "intent")
                    .order_by(JournalEntry.id)
                )
            )
            for r in rows:
                s.expunge(r)
            return rows

    def entries(self, action: str | None = None) -> list[JournalEntry]:
        with self.db.session() as s:
            q = select(JournalEntry).where(JournalEntry.project == self.project)
            if action:
                q = q.where(JournalEntry.action == action)
            rows = list(s.scalars(q.order_by(JournalEntry.id)))
            for r in rows:
                s.expunge(r)
            return rows
