"""The arguments and options that several commands share, declared once."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

STORE_PATH = click.argument("path", type=click.Path(path_type=Path))
JSON_FLAG = click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")
DSN_OPTION = click.option(
    "--dsn", required=True, envvar="EVSTORE_DSN", show_envvar=True,
    help="PostgreSQL connection string, e.g. 'host=db.example dbname=fleet user=evstore'.",
)

if TYPE_CHECKING:  # click 8.5 made ParamType generic; older clicks cannot subscript it
    ParamType = click.ParamType[int, Any]
else:
    ParamType = click.ParamType


class Parsed(ParamType):
    """An option value read by one of the ``times`` parsers; its ``ValueError`` is a usage
    error."""

    def __init__(self, name: str, parse: Callable[[str], int]) -> None:
        self.name, self.parse = name, parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            return value if isinstance(value, int) else self.parse(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def writable_file(
    ctx: click.Context, param: click.Parameter, value: Path | None
) -> Path | None:
    """Refuse an unwritable output file (``--json FILE``, ``--plot FILE``) before the run,
    not after it."""
    if value is None:
        return None
    parent = value.parent if str(value.parent) else Path(".")
    if value.is_dir():
        raise click.BadParameter(f"{value} is a directory", ctx, param)
    if not parent.is_dir():
        raise click.BadParameter(f"cannot write {value}: no directory {parent}", ctx, param)
    writable = os.access(value, os.W_OK) if value.exists() else os.access(parent, os.W_OK)
    if not writable:
        raise click.BadParameter(f"cannot write {value}", ctx, param)
    return value
