"""How every call and command names an entry: its exact id wins, else a unique prefix of
one (operators paste the short ids tables show, or whole 64-hex ids); anything else is
``NotFoundError`` or ``AmbiguousIDError``.

``choose`` is the rule; callers bring the ids that start with what was asked for from
where they keep them (the live entries of a collection, every id a log has held, the ids
shipped from a node). Destructive calls take exact ids only and do not come here.
"""

from __future__ import annotations

from collections.abc import Iterable

from evstore._core import inputs
from evstore._core.errors import AmbiguousIDError, NotFoundError
from evstore._storage import audit
from evstore._storage.audit import Names
from evstore._storage.log import Log

EVERY_KIND = "container or sandbox"


def choose(wanted: str, matches: Iterable[str], what: str) -> str:
    """The id ``wanted`` names, given ``matches``: the known ids that start with it (all
    of them, or at least two when there are more)."""
    found = sorted(set(matches))
    if wanted in found:
        return wanted
    if len(found) == 1:
        return found[0]
    if not found:
        raise NotFoundError(f"{wanted!r}: no such {what}")
    shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
    raise AmbiguousIDError(f"{wanted!r} matches more than one {what} ({shown})")


def prefixed(known: Iterable[str], wanted: str) -> list[str]:
    """The ids in ``known`` that start with ``wanted`` (none for an empty ``wanted``)."""
    return [ident for ident in known if wanted and ident.startswith(wanted)]


def in_log(log: Log, names: Names, wanted: str) -> str:
    """The id ``wanted`` names among every entry the log has held, deleted ones included.

    A read-only store learns the ids written after it opened by reading the feed, once
    nothing it knows matches."""
    inputs.text("id", wanted)
    matches = prefixed((ident for _entity, ident in list(names.values())), wanted)
    if not matches:
        audit.learn_names(log, names)
        matches = prefixed((ident for _entity, ident in list(names.values())), wanted)
    return choose(wanted, matches, EVERY_KIND)
