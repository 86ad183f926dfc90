"""SQLAlchemy ORM on datatier's router: writes go to the primary, reads to a fit replica,
and a session sees its own committed writes (read-your-writes through a GTID wait).

Run against the sandbox (with ``datatier replication heartbeat`` running)::

    DATATIER_CONFIG=.sandbox/datatier.toml python -m examples.sqlalchemy_notes

``tests/integration/routing/test_router_sqlalchemy.py`` runs the same code.
"""

from __future__ import annotations

from sqlalchemy import String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from datatier import routing
from datatier.replication.router import Router
from datatier.routing.sqlalchemy import RoutedEngines, RoutedSession, session_factory

DATABASE = "notes_app"


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(String(200))


def sessions(router: Router) -> sessionmaker[RoutedSession]:
    """Sessions that read within 2 s of lag and see their own writes; creates the table."""
    engines = RoutedEngines(router)
    Base.metadata.create_all(engines.engine(router.route("write").node))
    return session_factory(router, max_lag=2.0, read_your_writes=True, engines=engines)


def write_then_read(make: sessionmaker[RoutedSession], body: str) -> tuple[Note, str]:
    """Add a note, commit, read it back: (the note as read, the node the read used)."""
    with make() as session:
        session.add(Note(body=body))
        session.commit()  # flushed to the primary
        note = session.scalars(select(Note).where(Note.body == body)).one()
        return note, session.routes[-1][1]


def main() -> None:
    with routing.open(database=DATABASE) as router:
        note, node = write_then_read(sessions(router), "hello")
        print(f"note {note.id} read back from {node}")


if __name__ == "__main__":
    main()
