"""The end-to-end tests bring their own `prefect server start`, workers and databases (see the test module).

They never talk to the session's test-harness server, so the autouse harness fixture of ``tests/conftest.py`` is
replaced here by one that starts nothing: running only these tests does not pay for a server they do not use.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[None]:
    yield
