"""Engine, sessions and migrations of the state database.

URL precedence: the argument (``--state PATH`` or a URL), then $ORCH_STATE_URL, then SQLite at
$ORCH_STATE_DIR/state.db, else ~/.local/state/orch/state.db. Alembic migrations run at open
(upgrade head), programmatically: users need no alembic.ini.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from orchestrator.errors import UserError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_MAGIC = b"SQLite format 3\x00"


class Base(DeclarativeBase):
    """Declarative base of every state table (orch's and metering's)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(ts: datetime | None) -> datetime | None:
    """SQLite forgets time zones: read naive timestamps back as UTC."""
    if ts is None:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def default_state_path() -> Path:
    base = os.environ.get("ORCH_STATE_DIR")
    if base:
        return Path(base) / "state.db"
    return Path.home() / ".local" / "state" / "orch" / "state.db"


def resolve_url(url: str | None = None) -> str:
    """A SQLAlchemy URL from a URL or a file path (``--state PATH``), $ORCH_STATE_URL, or the default file."""
    chosen = url or os.environ.get("ORCH_STATE_URL")
    if not chosen:
        return f"sqlite:///{default_state_path()}"
    if "://" in chosen:
        return chosen
    return f"sqlite:///{Path(chosen).expanduser().resolve()}"


def redact_url(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _check_sqlite_file(url: str) -> None:
    """Refuse a file that is not a SQLite database before SQLite touches it (nothing changes)."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if not u.drivername.startswith("sqlite") or not u.database or u.database == ":memory:":
        return
    path = Path(u.database)
    if path.exists():
        if path.is_dir():
            raise UserError(f"state database {path} is a directory, not a SQLite file")
        with path.open("rb") as f:
            head = f.read(len(SQLITE_MAGIC))
        if head and head != SQLITE_MAGIC:
            raise UserError(
                f"state database {path} is not a SQLite database (corrupt or a different file); "
                "nothing was changed. Point --state at another file or restore a backup"
            )
    else:
        path.parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=10000")  # wait for another writer instead of failing at once
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()


class StateDB:
    """An open, migrated state database."""

    def __init__(self, url: str, engine: Engine) -> None:
        self.url = url
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on error."""
        with self._sessions.begin() as s:
            yield s

    def new_session(self) -> Session:
        return self._sessions()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> StateDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _alembic_config():  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head() or ""


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> None:
    """Upgrade to head; refuse (changing nothing) a database stamped by a newer orch."""
    from alembic import command
    from alembic.script import ScriptDirectory

    cfg = _alembic_config()
    script = ScriptDirectory.from_config(cfg)
    known = {rev.revision for rev in script.walk_revisions()}
    rev = current_revision(engine)
    if rev is not None and rev not in known:
        raise UserError(f"state database is from a newer orch (revision {rev}); upgrade orch")
    if rev == script.get_current_head():
        return
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def open_state(url: str | None = None) -> StateDB:
    """Open (creating and migrating as needed) the state database. See the module doc for the URL."""
    resolved = resolve_url(url)
    _check_sqlite_file(resolved)
    try:
        engine = create_engine(resolved, future=True, json_deserializer=_json_value)
    except Exception as exc:  # bad URL or missing driver
        raise UserError(f"cannot open state database {redact_url(resolved)}: {exc}") from None
    if engine.dialect.name == "sqlite":
        _sqlite_pragmas(engine)
    try:
        migrate(engine)
    except UserError:
        engine.dispose()
        raise
    except (DatabaseError, OperationalError) as exc:
        engine.dispose()
        raise UserError(
            f"cannot use state database {redact_url(resolved)}: {exc.orig or exc}; nothing was changed"
        ) from None
    missing = _missing_tables(engine)
    if missing:
        engine.dispose()
        raise UserError(f"state database {redact_url(resolved)} is damaged: table(s) {', '.join(missing)} missing "
                        "although its schema revision says they exist; restore it from a backup or use another "
                        "--state / ORCH_STATE_URL; nothing was changed")
    return StateDB(resolved, engine)


def _missing_tables(engine: Engine) -> list[str]:
    """Tables of orch's schema a migrated database lacks (dropped by hand, or a damaged file)."""
    from sqlalchemy import inspect

    import orchestrator.state.models  # noqa: F401 - registers the tables on Base.metadata

    have = set(inspect(engine).get_table_names())
    return sorted(set(Base.metadata.tables) - have)


def _json_value(text: str) -> Any:
    """JSON columns as read back: a value that is not JSON is a damaged database, said in one line."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        raise UserError(f"the state database holds a damaged value where JSON belongs ({text[:40]!r}); restore it "
                        "from a backup, or repair that row") from None
