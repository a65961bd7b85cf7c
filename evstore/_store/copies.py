"""Private copies of statuses and metadata: what the store holds is never shared with a
caller or an update fn, so nothing outside the store can change it without an event."""

from __future__ import annotations

from typing import TypeVar

import msgspec

from evstore._core.errors import InvalidInputError
from evstore._core.model import (
    ContainerMetadata,
    ContainerResources,
    ContainerStatus,
    SandboxMetadata,
    SandboxStatus,
)
from evstore._core.states import SandboxState

S = TypeVar("S", bound=ContainerStatus | SandboxStatus)
M = TypeVar("M", bound=ContainerMetadata | SandboxMetadata)

_encoder = msgspec.msgpack.Encoder()
# what encoding a wrongly typed value raises: TypeError, OverflowError (an int past 64
# bits), ValueError (UnicodeEncodeError); decoding it back, msgspec's DecodeError (a
# ValueError only in newer msgspec releases)
UNSTORABLE = (TypeError, ValueError, OverflowError, msgspec.DecodeError)


def clone(status: S) -> S:
    """A private copy, so neither the caller nor ``fn`` can alter what the store holds."""
    copy = msgspec.structs.replace(status)
    if isinstance(copy, ContainerStatus) and copy.resources is not None:
        copy.resources = _copy_resources(copy.resources)
    return copy


def keep(new: S, old: S) -> S:
    """A private copy of what ``fn`` returned, sharing its resources with ``old`` when they
    are equal: what the store holds is never changed in place, so sharing is safe and
    spares a deep copy on every update that leaves them alone."""
    kept = msgspec.structs.replace(new)
    if isinstance(kept, ContainerStatus):
        if kept.resources is not None:
            previous = old.resources  # type: ignore[union-attr]
            if kept.resources == previous:
                kept.resources = previous
            else:
                kept.resources = _copy_resources(kept.resources)
    elif type(kept.state) is not SandboxState:
        kept.state = _sandbox_state(kept.state)
    return kept


def _sandbox_state(value: object) -> SandboxState:
    """A sandbox's state as the enum (an int that names one is taken): the store's copy
    must hold what moves are checked and events named by."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return SandboxState(value)
        except ValueError:
            pass
    raise InvalidInputError(f"status cannot be stored: state must be a SandboxState, not {value!r}")


def _copy_resources(resources: ContainerResources) -> ContainerResources:
    """A deep copy; only the Linux part holds mutable containers."""
    try:
        return _copy_resource_parts(resources)
    except TypeError as exc:  # a part that is no struct (a dict, say)
        raise InvalidInputError(f"status cannot be stored: resources: {exc}") from exc


def _copy_resource_parts(resources: ContainerResources) -> ContainerResources:
    copy = msgspec.structs.replace(resources)
    linux = copy.linux
    if linux is not None:
        linux = copy.linux = msgspec.structs.replace(linux)
        linux.unified = dict(linux.unified)
        limits = linux.hugepage_limits
        linux.hugepage_limits = [msgspec.structs.replace(h) for h in limits] if limits else []
    if copy.windows is not None:
        copy.windows = msgspec.structs.replace(copy.windows)
    return copy


def clone_metadata(metadata: M) -> M:
    try:
        decoded: M = msgspec.msgpack.decode(_encoder.encode(metadata), type=type(metadata))
    except UNSTORABLE as exc:
        where = str(exc).replace("`$", "`metadata")
        raise InvalidInputError(f"{metadata.id}: metadata cannot be stored: {where}") from exc
    return decoded
