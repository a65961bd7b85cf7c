"""States and the moves allowed between them (CRI's numbers, containerd's rules)."""

from __future__ import annotations

from enum import IntEnum

from evstore._core.errors import InvalidTransitionError


class ContainerState(IntEnum):
    CREATED = 0
    RUNNING = 1
    EXITED = 2
    UNKNOWN = 3


class SandboxState(IntEnum):
    INIT = 0
    READY = 1
    NOTREADY = 2
    UNKNOWN = 3

    def cri_state(self) -> str | None:
        """The CRI name; INIT has none because CRI does not show a sandbox being set up."""
        if self is SandboxState.READY:
            return "SANDBOX_READY"
        if self is SandboxState.INIT:
            return None
        return "SANDBOX_NOTREADY"


# every state's name as people read it (``ls``, ``fleet ls --state``, the fleet's ``state``)
STATE_NAMES = tuple(dict.fromkeys(state.name.lower() for state in (*ContainerState, *SandboxState)))

_CONTAINER_MOVES = {
    (ContainerState.CREATED, ContainerState.RUNNING),
    (ContainerState.CREATED, ContainerState.EXITED),
    (ContainerState.RUNNING, ContainerState.EXITED),
    (ContainerState.UNKNOWN, ContainerState.EXITED),
}

_SANDBOX_MOVES = {
    (SandboxState.INIT, SandboxState.READY),
    (SandboxState.INIT, SandboxState.NOTREADY),
    (SandboxState.READY, SandboxState.NOTREADY),
    (SandboxState.UNKNOWN, SandboxState.NOTREADY),
}


def check_move(old: IntEnum, new: IntEnum) -> None:
    """Raise ``InvalidTransitionError`` unless ``old -> new`` is allowed (staying is)."""
    if old == new:
        return
    moves = _CONTAINER_MOVES if isinstance(old, ContainerState) else _SANDBOX_MOVES
    if (old, new) not in moves:
        raise InvalidTransitionError(f"{old.name} -> {new.name} is not an allowed move")
