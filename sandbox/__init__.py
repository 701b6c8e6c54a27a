"""A local stand-in for the providers' HTTP APIs (Parallel, GROQ, Anthropic, Workers AI, OpenAI embeddings).

Real clients run against it unchanged; it enforces limits, injects faults and reports what it saw. It imports
nothing from the rest of the project. Start it with ``python -m sandbox`` or
:class:`sandbox.server.SandboxServer`.
"""

from typing import TYPE_CHECKING, Any

from sandbox.config import FaultRule, ProviderConfig, SandboxConfig

if TYPE_CHECKING:
    from sandbox.app import create_app
    from sandbox.server import SandboxServer

__all__ = ["FaultRule", "ProviderConfig", "SandboxConfig", "SandboxServer", "create_app"]


def __getattr__(name: str) -> Any:
    """Load lazily: ``python -m sandbox`` needs neither the helper nor httpx."""
    if name == "create_app":
        from sandbox.app import create_app

        return create_app
    if name == "SandboxServer":
        from sandbox.server import SandboxServer

        return SandboxServer
    raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
