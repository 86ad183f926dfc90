"""Fixtures shared by the MySQL integration tests."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The arguments of every process the code under test starts (each still runs): a
    restore starts none but stock ``mariadb`` clients, so this counts them."""
    started: list[Any] = []
    popen = subprocess.Popen

    def counting(*args: Any, **kwargs: Any) -> Any:
        started.append(args)
        return popen(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", counting)
    return started
