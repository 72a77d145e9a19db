"""State database: migrations at open, refusal of corrupt/newer databases, the project lock, the journal.

Runs on SQLite always, and on PostgreSQL when Debian's postgresql is installed (a throwaway cluster on a
loopback port, as the postgres user when we are root). Install it with: apt-get install -y postgresql
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.errors import UserError
from orchestrator.state import lock as lockmod
from orchestrator.state.db import current_revision, open_state, resolve_url
from orchestrator.state.journal import Journal
from orchestrator.state.models import Lock


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """URL of a temporary PostgreSQL cluster (skipped, with the reason printed, when there is none)."""
    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not initdb:
        reason = "PostgreSQL not installed (apt-get install -y postgresql); state tests ran on SQLite only"
        print(f"SKIP postgres: {reason}")
        pytest.skip(reason)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        print("SKIP postgres: psycopg is not installed (pip install 'orch[postgres]')")
        pytest.skip("psycopg is not installed")
    bindir = Path(initdb[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="orch-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    run = lambda *cmd: subprocess.run([*prefix, *cmd], check=True, capture_output=True, text=True)  # noqa: E731
    try:
        run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "orch", "--no-sync")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-t", "30", "-o",
            f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"could not start a PostgreSQL cluster: {exc.stderr}")
    try:
        yield f"postgresql+psycopg://orch@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


_dbs = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    base = request.getfixturevalue("postgres")
    import psycopg

    name = f"t{os.getpid()}_{next(_dbs)}"
    with psycopg.connect(base.replace("postgresql+psycopg", "postgresql"), autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    return base.rsplit("/", 1)[0] + f"/{name}"


def _tables(db) -> set[str]:  # type: ignore[no-untyped-def]
    from sqlalchemy import inspect

    return set(inspect(db.engine).get_table_names())


def test_open_migrates_to_head_and_reopening_is_a_no_op(state_url: str) -> None:
    from orchestrator.state.db import head_revision

    with open_state(state_url) as db:
        assert {"replicas", "journal", "locks", "plans", "alembic_version"} <= _tables(db)
        assert current_revision(db.engine) == head_revision()
    with open_state(state_url) as db:
        assert current_revision(db.engine) == head_revision()


def test_initial_revision_is_0001_initial() -> None:
    from alembic.script import ScriptDirectory

    from orchestrator.state.db import _alembic_config

    script = ScriptDirectory.from_config(_alembic_config())
    base = script.get_revision("0001_initial")
    assert base.down_revision is None
    assert "0001_initial" in {r.revision for r in script.walk_revisions()}


def test_database_from_a_newer_orch_is_refused_and_unchanged(state_url: str) -> None:
    from sqlalchemy import text

    with open_state(state_url) as db:
        with db.engine.begin() as con:
            con.execute(text("UPDATE alembic_version SET version_num = '0099_future'"))
        before = _tables(db)
    with pytest.raises(UserError, match=r"state database is from a newer orch \(revision 0099_future\); upgrade orch"):
        open_state(state_url)
    from sqlalchemy import create_engine, inspect

    engine = create_engine(state_url)
    with engine.connect() as con:
        assert con.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0099_future"
        assert set(inspect(con).get_table_names()) == before
    engine.dispose()


def test_corrupt_file_is_refused_and_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    garbage = b"this is not a database\n" * 100
    path.write_bytes(garbage)
    with pytest.raises(UserError, match="not a SQLite database"):
        open_state(str(path))
    assert path.read_bytes() == garbage


def test_truncated_sqlite_file_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with open_state(str(path)):
        pass
    data = path.read_bytes()
    path.write_bytes(data[:100] + b"\x00garbage" * 200)  # right magic, broken pages
    broken = path.read_bytes()
    with pytest.raises(UserError, match="cannot use state database"):
        open_state(str(path))
    assert path.read_bytes() == broken


def test_url_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCH_STATE_URL", raising=False)
    monkeypatch.setenv("ORCH_STATE_DIR", str(tmp_path))
    assert resolve_url() == f"sqlite:///{tmp_path / 'state.db'}"
    assert resolve_url(str(tmp_path / "x.db")) == f"sqlite:///{tmp_path / 'x.db'}"
    monkeypatch.setenv("ORCH_STATE_URL", "postgresql+psycopg://u@h/db")
    assert resolve_url() == "postgresql+psycopg://u@h/db"
    assert resolve_url("sqlite:////tmp/y.db") == "sqlite:////tmp/y.db"  # the argument wins
    monkeypatch.delenv("ORCH_STATE_DIR")
    monkeypatch.delenv("ORCH_STATE_URL")
    assert resolve_url().endswith("/.local/state/orch/state.db")


def test_lock_refuses_a_second_holder_and_break_lock_warns(state_url: str) -> None:
    with open_state(state_url) as db:
        holder = lockmod.acquire(db, "p")
        with pytest.raises(UserError, match=rf"locked by another apply/destroy: held by {holder} since .* ago"):
            lockmod.acquire(db, "p")
        warnings: list[str] = []
        assert lockmod.acquire(db, "p", break_lock=True, warn=warnings.append) == holder
        assert len(warnings) == 1 and holder in warnings[0] and "--break-lock" in warnings[0]
        lockmod.release(db, "p", holder)
        assert lockmod.current(db, "p") is None
        with lockmod.project_lock(db, "q") as h:  # other projects are independent
            assert lockmod.current(db, "q").holder == h
            assert lockmod.heartbeat(db, "q", h)
        assert lockmod.current(db, "q") is None


def test_lock_of_a_dead_process_on_this_host_is_taken_over(state_url: str) -> None:
    from orchestrator.state.db import utcnow

    proc = subprocess.Popen(["true"])
    proc.wait()
    dead = f"{socket.gethostname()}:{proc.pid}"
    with open_state(state_url) as db:
        with db.session() as s:
            s.add(Lock(project="p", holder=dead, acquired_at=utcnow(), heartbeat_at=utcnow()))
        warnings: list[str] = []
        lockmod.acquire(db, "p", warn=warnings.append)
        assert "its process is gone" in warnings[0] and dead in warnings[0]
        with db.session() as s:  # another host's lock is never assumed dead
            s.query(Lock).delete()
            s.add(Lock(project="p", holder="elsewhere:1", acquired_at=utcnow(), heartbeat_at=utcnow()))
        with pytest.raises(UserError, match="elsewhere:1"):
            lockmod.acquire(db, "p")


def test_only_one_of_many_concurrent_acquirers_wins(state_url: str) -> None:
    with open_state(state_url) as db:
        results: list[str] = []
        barrier = threading.Barrier(6)

        def contend() -> None:
            barrier.wait()
            try:
                lockmod.acquire(db, "race")
                results.append("won")
            except UserError:
                results.append("refused")

        threads = [threading.Thread(target=contend) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == ["refused"] * 5 + ["won"]


def test_journal_intent_then_outcome(state_url: str) -> None:
    with open_state(state_url) as db:
        j = Journal(db, "p")
        a = j.intent("launch", "p-chat-abc-0", "aws", {"region": "aws:us-east-1"})
        b = j.intent("terminate", "p-chat-abc-1", "aws")
        assert [e.id for e in j.pending()] == [a, b]
        j.done(a, {"handle": "i-1"})
        j.failed(b, "CapacityError")
        assert j.pending() == []
        assert [(e.action, e.status) for e in j.entries()] == [("launch", "done"), ("terminate", "failed")]
        assert Journal(db, "other").entries() == []


def test_upgrade_to_billing_periods_keeps_existing_replicas_billed(state_url: str) -> None:
    """A database made before billing_periods gets one period per replica over its recorded life."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from orchestrator.state.db import _alembic_config

    engine = create_engine(state_url)
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002_metering")
        cols = ("id, project, deployment, model, provider, region, instance_type, gpu, gpu_count, market, "
                "usd_per_hour, list_usd_per_hour, plan_id, group_key, handle_id, status, created_at, terminated_at")
        for rid, handle, status, end in (("run", "h1", "running", None), ("gone", "h2", "terminated", "2026-11-02"),
                                         ("nolaunch", None, "failed", None)):
            conn.execute(text(f"INSERT INTO replicas ({cols}) VALUES (:id, 'p', 'd', 'm', 'aws', 'r', 'i', 'L4', 1, "
                              f"'spot', 0.5, NULL, 'p1', 'g', :h, :s, '2026-11-01', :e)"),
                         {"id": rid, "h": handle, "s": status, "e": end})
    engine.dispose()
    with open_state(state_url) as db, db.engine.connect() as conn:
        rows = conn.execute(text('SELECT replica_id, "end", usd_per_hour, list_usd_per_hour FROM billing_periods '
                                 "ORDER BY replica_id")).all()
    ends = {r[0]: (str(r[1])[:10] if r[1] is not None else None) for r in rows}
    assert ends == {"gone": "2026-11-02", "nolaunch": "2026-11-01", "run": None}  # a failed launch is never billed
    assert {(r[2], r[3]) for r in rows} == {(0.5, 0.5)}
