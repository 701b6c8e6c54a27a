"""Start the provider sandbox from the command line.

``python -m sandbox --host 127.0.0.1 --port 8765 [--config file.json] [--set groq.requests_per_minute=30]``
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from sandbox.app import app_state, create_app
from sandbox.config import ConfigError, SandboxConfig, load_config
from sandbox.serving import SandboxUvicorn, uvicorn_config


def _parse_setting(text: str) -> tuple[str, str, Any]:
    """``provider.field=value`` with a JSON value (bare words are taken as strings)."""
    target, sep, raw = text.partition("=")
    provider, dot, field = target.partition(".")
    if not sep or not dot or not provider or not field:
        raise ConfigError(f"--set expects provider.field=value, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return provider, field, value


def build_config(config_path: str | None, settings: Sequence[str]) -> SandboxConfig:
    config = load_config(config_path) if config_path else SandboxConfig()
    patch: dict[str, dict[str, Any]] = {}
    for text in settings:
        provider, field, value = _parse_setting(text)
        patch.setdefault(provider, {})[field] = value
    return config.patched(patch) if patch else config


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--config", help="JSON file {provider: {field: value}}")
    parser.add_argument(
        "--set", action="append", default=[], metavar="PROVIDER.FIELD=VALUE",
        help="override one setting (JSON value), e.g. --set groq.requests_per_minute=30; repeatable",
    )  # fmt: skip
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    try:
        config = build_config(args.config, args.set)
    except (ConfigError, OSError) as exc:
        parser.error(str(exc))
    app = create_app(config)
    server = SandboxUvicorn(
        uvicorn_config(app, host=args.host, port=args.port, log_level=args.log_level), app_state(app)
    )
    print(f"provider sandbox on http://{args.host}:{args.port} (admin: /_sandbox/config, /_sandbox/stats)")
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
