"""The Django integration on the sandbox's real MariaDB servers: the example project
(``examples/django_notes``: every alias MySQL, no sqlite) runs its ORM through
``datatier.routing.django.Router``, opened the default way (``routing.open`` of
``$DATATIER_CONFIG``, monitor every 0.1 s). Which alias served each statement is recorded
with Django's execute wrappers.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import django
import pytest

from datatier.errors import ConfigError, ServiceUnavailable, UsageError
from tests.integration.conftest import SandboxHandle, wait_for
from tests.integration.routing_support import running_monitor

DB = "django_notes"
ALIASES = ("default", "replica1", "replica2")


@pytest.fixture(scope="module")
def project(sandbox: SandboxHandle) -> Iterator[Any]:
    """Django set up on the example settings; yields the datatier Django router."""
    saved = {k: os.environ.get(k) for k in ("DATATIER_CONFIG", "DATATIER_HEALTH__INTERVAL")}
    os.environ["DATATIER_CONFIG"] = str(sandbox.config_path)
    os.environ["DATATIER_HEALTH__INTERVAL"] = "0.1"
    os.environ["DJANGO_SETTINGS_MODULE"] = "examples.django_notes.settings"
    try:
        with running_monitor(sandbox, DB):  # heartbeat + the database on every node
            django.setup()
            from django.db import connections
            from django.db import router as django_router

            from examples.django_notes.notes.models import Note

            with connections["default"].schema_editor() as editor:
                editor.create_model(Note)
            sandbox.wait_replicated()
            routing = django_router.routers[0]
            try:
                yield routing
            finally:
                connections.close_all()
                routing.router.close()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def served_by() -> Iterator[list[str]]:
    """The aliases that ran each statement inside the block, in order."""
    from django.db import connections

    seen: list[str] = []

    def recorder(alias: str) -> Callable[..., Any]:
        def wrapper(execute: Callable[..., Any], sql: str, *args: Any) -> Any:
            seen.append(alias)
            return execute(sql, *args)

        return wrapper

    with contextlib.ExitStack() as stack:
        for alias in ALIASES:
            stack.enter_context(connections[alias].execute_wrapper(recorder(alias)))
        yield seen


def test_orm_reads_replicas_writes_primary(project: Any, sandbox: SandboxHandle) -> None:
    from examples.django_notes.notes.models import Note

    with served_by() as seen:
        note = Note.objects.create(body="hello")
    assert seen == ["default"] and note._state.db == "default"
    sandbox.wait_replicated()
    project._written.set(None)  # forget the write: plain reads now
    with served_by() as seen:
        assert Note.objects.get(pk=note.pk).body == "hello"
    assert seen[0] in ("replica1", "replica2")
    assert Note.objects.using("replica1").filter(pk=note.pk).exists()
    assert project.allow_relation(note, Note.objects.using("replica2").get(pk=note.pk))
    assert project.allow_migrate("default", "notes") is True
    assert project.allow_migrate("replica1", "notes") is False
    assert project.allow_migrate("elsewhere", "notes") is None


def test_read_your_writes_from_the_snapshots(project: Any, sandbox: SandboxHandle) -> None:
    """replica2 cannot apply the insert (its table is locked): right after the write the
    read goes to the primary; once the monitor measured the primary after the write, reads
    go to replica1 (which has the row) and never to replica2."""
    from examples.django_notes.notes.models import Note

    locker = sandbox.connect("replica2")
    try:
        with locker.cursor() as cur:
            cur.execute(f"LOCK TABLES {DB}.notes_note WRITE")
        note = Note.objects.create(body="mine")
        with served_by() as seen:
            assert Note.objects.get(pk=note.pk).body == "mine"
        assert seen == ["default"]  # no round has measured the primary since the write
        wait_for(lambda: project.db_for_read(Note) == "replica1", 5)
        for _ in range(5):
            with served_by() as seen:
                assert Note.objects.get(pk=note.pk).body == "mine"
            assert seen == ["replica1"]
        from django.db import transaction

        with transaction.atomic():
            Note.objects.create(body="in-atomic")
            assert project.db_for_read(Note) == "default"  # uncommitted: only there
            assert Note.objects.filter(body="in-atomic").exists()
        assert project.db_for_read(Note) == "default"  # committed, not yet measured
        with contextlib.suppress(RuntimeError), transaction.atomic():
            Note.objects.create(body="rolled-back")
            raise RuntimeError("roll back")
        assert not Note.objects.filter(body="rolled-back").exists()
    finally:
        locker.close()
        sandbox.wait_replicated()


def test_bad_input(project: Any) -> None:
    from datatier.routing.django import Router

    running = project.router
    bad_node = Router({"router": running, "aliases": {"default": "primary", "replica1": "nope"}})
    with pytest.raises(ConfigError, match=r"aliases.replica1: unknown node 'nope' \(known: "):
        bad_node.db_for_read(None)
    no_alias = Router({"router": running, "aliases": {"default": "primary", "reports": "primary"}})
    with pytest.raises(ConfigError, match=r"aliases\.reports: not an alias in DATABASES"):
        no_alias.db_for_write(None)
    unmapped = Router({"router": running, "aliases": {"default": "primary"}})
    with pytest.raises(ConfigError, match=r"node 'replica\d' has no Django alias"):
        unmapped.db_for_read(None)
    zero = Router({"router": running, "max_lag": 0})
    with pytest.raises(UsageError, match="max_lag must be a finite number > 0"):
        zero.db_for_read(None)
    with pytest.raises(ConfigError, match="DATATIER_ROUTING: colour: unknown key"):
        Router({"colour": "blue"})
    stopped = Router({"router": running, "aliases": {"default": "primary"}})
    running.close()  # a closed router routes nothing
    with pytest.raises(ServiceUnavailable, match="router is closed"):
        running.connection("write")
    del stopped
