"""The end-to-end tests bring their own `prefect server start`, workers and databases (``tests/e2e/deployed.py``).

They never talk to the session's test-harness server, so the autouse harness fixture of ``tests/conftest.py`` is
replaced here by one that starts nothing: running only these tests does not pay for a server they do not use.
The deployed system is built once for the whole package: every e2e module shares it (a second one would cost
another minute of setup).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.deployed import Deployed, deployed_system


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[None]:
    yield


@pytest.fixture(scope="package")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    with deployed_system(tmp_path_factory.mktemp("e2e")) as deployed:
        yield deployed
