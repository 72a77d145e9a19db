"""One apply (or destroy) per project at a time: a row in ``locks``, inserted in a transaction.

The primary key makes a second insert fail on SQLite and PostgreSQL alike. A lock left by a process
that died on this host (kill -9) is taken over with a warning; any other holder needs ``--break-lock``.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from orchestrator.errors import UserError
from orchestrator.state.db import StateDB, as_utc, utcnow
from orchestrator.state.models import Lock

HEARTBEAT_S = 30.0


def this_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder_is_dead_here(holder: str) -> bool:
    """True when the holder ran on this host and its process no longer exists."""
    host, _, pid = holder.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid))


def _age(ts: datetime) -> str:
    secs = int((utcnow() - as_utc(ts)).total_seconds())  # type: ignore[operator]
    if secs < 120:
        return f"{secs}s"
    if secs < 7200:
        return f"{secs // 60}m"
    return f"{secs // 3600}h{(secs % 3600) // 60:02d}m"


def _try_insert(db: StateDB, project: str, holder: str) -> Lock | None:
    """Insert the lock row; None when someone holds it (returns the current row)."""
    now = utcnow()
    try:
        with db.session() as s:
            s.add(Lock(project=project, holder=holder, acquired_at=now, heartbeat_at=now))
        return None
    except IntegrityError:
        with db.session() as s:
            row = s.get(Lock, project)
            if row is not None:
                s.expunge(row)
            return row


def acquire(
    db: StateDB, project: str, *, break_lock: bool = False, warn: Callable[[str], None] = lambda m: None
) -> str:
    """Take the project's lock or raise UserError naming the holder and the lock's age."""
    holder = this_holder()
    for _ in range(3):  # the holder may release between our insert and our read
        current = _try_insert(db, project, holder)
        if current is None:
            return holder
        desc = (
            f"held by {current.holder} since {as_utc(current.acquired_at):%Y-%m-%d %H:%M:%S} UTC "
            f"({_age(current.acquired_at)} ago, last heartbeat {_age(current.heartbeat_at)} ago)"
        )
        if break_lock or holder_is_dead_here(current.holder):
            why = "--break-lock" if break_lock else "its process is gone"
            warn(f"warning: removing the lock on project {project!r} {desc} ({why})")
            with db.session() as s:
                s.execute(delete(Lock).where(Lock.project == project, Lock.holder == current.holder))
            continue
        raise UserError(
            f"project {project!r} is locked by another apply/destroy: {desc}. "
            "If that process is gone, rerun with --break-lock"
        )
    raise UserError(f"could not take the lock on project {project!r}; try again")


def release(db: StateDB, project: str, holder: str) -> None:
    with db.session() as s:
        s.execute(delete(Lock).where(Lock.project == project, Lock.holder == holder))


def heartbeat(db: StateDB, project: str, holder: str) -> bool:
    """Refresh heartbeat_at; False when the lock was broken by someone else."""
    with db.session() as s:
        res = s.execute(
            update(Lock).where(Lock.project == project, Lock.holder == holder).values(heartbeat_at=utcnow())
        )
        return bool(res.rowcount)


def current(db: StateDB, project: str) -> Lock | None:
    with db.session() as s:
        row = s.scalars(select(Lock).where(Lock.project == project)).first()
        if row is not None:
            s.expunge(row)
        return row


@contextmanager
def project_lock(
    db: StateDB, project: str, *, break_lock: bool = False, warn: Callable[[str], None] = lambda m: None
) -> Iterator[str]:
    """Hold the lock for the block, with a heartbeat thread; released on exit (not on kill -9)."""
    holder = acquire(db, project, break_lock=break_lock, warn=warn)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            try:
                heartbeat(db, project, holder)
            except Exception:  # a missed heartbeat is not fatal; the next one retries
                pass

    t = threading.Thread(target=beat, name="orch-lock-heartbeat", daemon=True)
    t.start()
    try:
        yield holder
    finally:
        stop.set()
        t.join(timeout=5)
        release(db, project, holder)
