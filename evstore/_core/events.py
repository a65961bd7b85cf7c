"""Events: what one change to an entry did, how it is derived from two statuses and folded back.

A change is kept as the set of durable fields it set (``changes``), not as a whole status,
so the log stays small and a reader sees at once what moved.
"""

# annotations as objects, for msgspec (see ``model``)
from enum import IntEnum
from itertools import compress
from operator import is_not
from typing import Any

import msgspec

from evstore._core.model import TRANSIENT_FIELDS, ContainerStatus, SandboxStatus, Status
from evstore._core.states import ContainerState, SandboxState


class Kind(IntEnum):
    """The kind of change; numbers are written to disk, so never renumber."""

    CREATED = 0
    STARTED = 1
    EXITED = 2
    UPDATED = 3
    DELETED = 4
    READY = 5
    NOTREADY = 6


class Entity(IntEnum):
    """Which collection an entry lives in; numbers are written to disk."""

    CONTAINER = 0
    SANDBOX = 1


ENTITY_NAMES = {Entity.CONTAINER: "container", Entity.SANDBOX: "sandbox"}
STATUS_TYPES: dict[Entity, type[ContainerStatus] | type[SandboxStatus]] = {
    Entity.CONTAINER: ContainerStatus,
    Entity.SANDBOX: SandboxStatus,
}


class Event(msgspec.Struct, frozen=True):
    """One recorded change, as the audit log, history and live feed show it."""

    position: int
    entity: str
    id: str
    seq: int
    time: int
    type: str
    changes: dict[str, Any]


def _changes_struct(name: str, status_type: type[Status]) -> type[msgspec.Struct]:
    """A struct with every durable field of ``status_type`` optional, so unset ones vanish."""
    fields = [
        (f.name, f.type | msgspec.UnsetType, msgspec.UNSET)
        for f in msgspec.structs.fields(status_type)
        if f.name not in TRANSIENT_FIELDS
    ]
    return msgspec.defstruct(name, fields, omit_defaults=True, gc=False)


ContainerChanges = _changes_struct("ContainerChanges", ContainerStatus)
SandboxChanges = _changes_struct("SandboxChanges", SandboxStatus)
CHANGES_TYPES: dict[Entity, type[msgspec.Struct]] = {
    Entity.CONTAINER: ContainerChanges,
    Entity.SANDBOX: SandboxChanges,
}
# (index in the status's field tuple, name) of every durable field, per kind of status
_DURABLE = {  # by name only: ``msgspec.structs.fields`` would evaluate every annotation again
    entity: tuple(
        (index, name)
        for index, name in enumerate(STATUS_TYPES[entity].__struct_fields__)
        if name not in TRANSIENT_FIELDS
    )
    for entity in CHANGES_TYPES
}


def _diff_plan(entity: Entity) -> tuple[type[msgspec.Struct], int, tuple[int, ...], range]:
    """What ``diff`` needs of a kind of status: its changes struct and how many fields that
    has, the slot there of each field of the status (-1: transient), and those fields' indexes."""
    slot_of = {index: slot for slot, (index, _) in enumerate(_DURABLE[entity])}
    fields = range(len(STATUS_TYPES[entity].__struct_fields__))
    return CHANGES_TYPES[entity], len(slot_of), tuple(slot_of.get(i, -1) for i in fields), fields


_DIFF = {STATUS_TYPES[entity]: _diff_plan(entity) for entity in CHANGES_TYPES}


def entity_of(status: Status) -> Entity:
    return Entity.CONTAINER if isinstance(status, ContainerStatus) else Entity.SANDBOX


def diff(old: Status, new: Status) -> msgspec.Struct | None:
    """The durable fields ``new`` sets differently from ``old``; None when there are none.

    A value of another type counts as different even when equal (``10.0`` for ``10``), so
    that it goes into the event, where the check on what is written refuses it, instead of
    staying in memory unchecked until a snapshot writes what cannot be read back.
    """
    changes_type, size, slots, fields = _DIFF[type(new)]
    before, after = msgspec.structs.astuple(old), msgspec.structs.astuple(new)
    values: list[Any] | None = None
    # ``is`` first, in C: most fields are the very objects they were
    for i in compress(fields, map(is_not, after, before)):
        slot, a, b = slots[i], after[i], before[i]
        if slot >= 0 and (a != b or type(a) is not type(b)):
            if values is None:
                values = [msgspec.UNSET] * size
            values[slot] = a
    return None if values is None else changes_type(*values)


def no_changes(entity: Entity) -> msgspec.Struct:
    return CHANGES_TYPES[entity]()


def changes_dict(changes: msgspec.Struct) -> dict[str, Any]:
    """Changes as plain data (what ``Event.changes`` carries)."""
    result: dict[str, Any] = msgspec.to_builtins(changes)
    return result


State = ContainerState | SandboxState


def classify_move(before: State, after: State) -> Kind:
    """The kind of an update, named for the state it reaches (as CRI events are)."""
    if after is before:
        return Kind.UPDATED
    if after is ContainerState.EXITED:
        return Kind.EXITED
    if after is ContainerState.RUNNING:
        return Kind.STARTED
    if after is SandboxState.READY:
        return Kind.READY
    if after is SandboxState.NOTREADY:
        return Kind.NOTREADY
    return Kind.UPDATED


KIND_NAMES = {kind: kind.name.lower() for kind in Kind}
