"""A command suggested to a person (by `status`, `check`, an error or a notice), written so that
it runs as printed: with `--config PATH` whenever the config is not the default one, since the
default is what a bare `uplift-capture …` would read instead (then: "config file not found")."""

from __future__ import annotations

import shlex
from pathlib import Path

from daemon.config.settings import DEFAULT_CONFIG_PATH


def command(args: str, config: str | Path | None = None) -> str:
    """`uplift-capture ARGS`, plus `--config CONFIG` when CONFIG is a config file's path other
    than the default. ARGS is written as given (it may hold placeholders such as FOLDER);
    `--config` goes last, where every subcommand takes it."""
    text = f"uplift-capture {args}"
    if config is None or not Path(config).is_absolute() \
            or Path(config) == DEFAULT_CONFIG_PATH:
        return text  # None or a description ("the config"): the default is what is meant
    return f"{text} --config {shlex.quote(str(config))}"
