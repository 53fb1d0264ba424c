"""Settings: command-line flags > DOCPIPE_* environment > docpipe.toml > built-in defaults.

Typer reads the environment for each flag (its `envvar`), so a value that reaches this module
from the CLI already has the first two levels applied; `value()` adds the file and the default.
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from pipeline.errors import BadInput

DEFAULT_WORKDIR = ".docpipe"


def config_path() -> Path | None:
    explicit = os.environ.get("DOCPIPE_CONFIG")
    if explicit:
        return Path(explicit)
    candidate = Path("docpipe.toml")
    return candidate if candidate.is_file() else None


@lru_cache(maxsize=8)
def _load(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise BadInput(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"config file {path} is not valid TOML: {exc}") from None


def file_settings() -> dict[str, Any]:
    path = config_path()
    return _load(str(path) if path else None)


def value(section: str | None, key: str, cli_value: Any, default: Any) -> Any:
    """The effective value of one setting (cli_value already includes the environment)."""
    if cli_value is not None:
        return cli_value
    data = file_settings()
    if section:
        data = data.get(section, {}) if isinstance(data.get(section, {}), dict) else {}
    if key in data:
        return data[key]
    return default


def workdir(cli_value: Path | None) -> Path:
    return Path(value(None, "workdir", cli_value, DEFAULT_WORKDIR))
