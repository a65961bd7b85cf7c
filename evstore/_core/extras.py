"""The optional parts of evstore, and a one-line error naming the extra that a missing one
needs, with the pip command that fits how evstore itself was installed."""

from __future__ import annotations

import importlib.util

from evstore._core.errors import MissingExtraError

MODULES = {"cri": "cri_api", "fleet": "psycopg", "peer": "eventsourcing", "plot": "matplotlib"}


def missing(extra: str) -> bool:
    """Whether the package that ``extra`` brings cannot be imported here."""
    return importlib.util.find_spec(MODULES[extra]) is None


def require(extra: str, what: str) -> None:
    """Raise ``MissingExtraError`` when ``what`` cannot run for lack of ``extra``."""
    if missing(extra):
        raise missing_extra(extra, what)


def missing_extra(extra: str, what: str) -> MissingExtraError:
    """The one-line error for ``what``, which needs ``extra``."""
    return MissingExtraError(
        f"{what} needs the {extra} extra ({MODULES[extra]} is not installed):"
        f" {install_hint(extra)}"
    )


def install_hint(extra: str) -> str:
    """The pip command that adds ``extra``: a source checkout is named by its directory
    (``-e`` when it was installed editable), anything else by the project's name."""
    source = _source()
    if source is None:
        return f"pip install 'evstore[{extra}]'"
    directory, editable = source
    return f"pip install {'-e ' if editable else ''}'{directory}[{extra}]'"


def _source() -> tuple[str, bool] | None:
    """(directory, editable) when evstore was installed from a local directory (PEP 610's
    ``direct_url.json``); None for an index, a wheel file, or no installation at all.
    A source checkout's own ``evstore.egg-info`` (first on the path when run from there)
    has no such file: the installed one is looked for past it."""
    import json
    from importlib import metadata
    from urllib.parse import unquote, urlparse

    texts = (dist.read_text("direct_url.json") for dist in metadata.distributions(name="evstore"))
    text = next((found for found in texts if found), None)
    if text is None:
        return None
    try:
        found = json.loads(text)
        url = urlparse(found["url"])
    except (ValueError, KeyError, TypeError):
        return None
    if url.scheme != "file" or "dir_info" not in found:
        return None
    return unquote(url.path), bool(found["dir_info"].get("editable", False))
