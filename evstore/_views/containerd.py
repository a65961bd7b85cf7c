"""containerd's on-disk container status: the versioned JSON its CRI plugin writes.

``Status.encode()`` writes ``{"Version":"v1","Pid":..,"CreatedAt":..,...}`` with Go field
names, Unix-nanosecond times, Go's ``\\u003c``-style escapes and ``Resources`` in the CRI's
protobuf JSON names (the names evstore's ``ContainerResources`` already uses); the transient
``Starting``/``Removing``/``Unknown`` flags are never written. The importer reads this format
and the benchmark's baseline writes it, so both use this one definition.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from evstore._core.errors import ContainerdStatusError
from evstore._core.model import ContainerResources, ContainerStatus

STATUS_VERSION = "v1"
UNKNOWN_EXIT_CODE = 255  # containerd's unknownExitCode
UNKNOWN_REASON = "Unknown"  # containerd's unknownExitReason

Int32 = Annotated[int, msgspec.Meta(ge=-(2**31), lt=2**31)]
UInt32 = Annotated[int, msgspec.Meta(ge=0, lt=2**32)]


StatusError = ContainerdStatusError  # why a status file could not be loaded


class _Versioned(msgspec.Struct, rename="pascal"):
    version: str = ""


class ContainerdStatus(msgspec.Struct, rename="pascal"):
    """Go's ``versionedStatus{Version, Status}``: every field written, no omitempty."""

    version: str = ""
    pid: UInt32 = 0
    created_at: int = 0
    started_at: int = 0
    finished_at: int = 0
    exit_code: Int32 = 0
    reason: str = ""
    message: str = ""
    resources: ContainerResources | None = None

    def to_status(self) -> ContainerStatus:
        fields = msgspec.structs.asdict(self)
        del fields["version"]
        return ContainerStatus(**fields)


_encoder = msgspec.json.Encoder()


def encode_status(status: ContainerStatus) -> bytes:
    """The bytes containerd's ``Status.encode`` writes for ``status``."""
    return _encoder.encode(
        ContainerdStatus(
            version=STATUS_VERSION, pid=status.pid, created_at=status.created_at,
            started_at=status.started_at, finished_at=status.finished_at,
            exit_code=status.exit_code, reason=status.reason, message=status.message,
            resources=status.resources,
        )
    )


def decode_status(data: bytes) -> ContainerStatus:
    """containerd's ``Status.decode``: broken JSON or a version other than v1 is an error."""
    try:
        version = msgspec.json.decode(data, type=_Versioned).version
    except msgspec.DecodeError as exc:
        raise StatusError(f"broken status JSON: {exc}") from exc
    if version != STATUS_VERSION:
        raise StatusError(f"unsupported status version {version!r}")
    try:
        return msgspec.json.decode(data, type=ContainerdStatus).to_status()
    except msgspec.DecodeError as exc:
        raise StatusError(f"invalid v1 status: {exc}") from exc


def unknown_status(message: str = "") -> ContainerStatus:
    """containerd's ``unknownContainerStatus()``: what it loads for an unreadable status."""
    return ContainerStatus(
        exit_code=UNKNOWN_EXIT_CODE, reason=UNKNOWN_REASON, message=message, unknown=True
    )
