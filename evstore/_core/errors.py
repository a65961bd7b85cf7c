"""The error types: every failure a caller can act on is an ``EvstoreError``."""

from __future__ import annotations


class EvstoreError(Exception):
    """Base of every error evstore raises on purpose."""


class AlreadyExistsError(EvstoreError):
    """An entry with that id is live already."""


class NotFoundError(EvstoreError, KeyError):
    """No live entry (or no store) answers to that id or path."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class StoreNotFoundError(NotFoundError, FileNotFoundError):
    """No store at that path (opened ``readonly``, or a command that never creates one).

    A ``NotFoundError`` as before, and a ``FileNotFoundError``, which is what it is."""


class HistoryDroppedError(NotFoundError):
    """The point asked for lies before what retention (``compact --drop-before``) kept."""


class AmbiguousIDError(EvstoreError, KeyError):
    """A prefix matches more than one live entry."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidTransitionError(EvstoreError):
    """An update would move an entry to a state it may not reach from its current one."""


class InvalidInputError(EvstoreError, ValueError):
    """An argument (id, metadata, status, option) is not of the form evstore needs."""


class StoreLockedError(EvstoreError):
    """Another writer (in this process or another) holds the store."""


class ReadOnlyError(EvstoreError):
    """A write was asked of a store opened with ``readonly=True``."""


class StoreClosedError(EvstoreError):
    """The store was closed (or opened in a parent process before ``fork()``)."""


class StoreAccessError(EvstoreError, PermissionError):
    """This process may not open the store's files as asked (file permissions, or a
    read-only filesystem); the store itself is fine."""


class CorruptStoreError(EvstoreError):
    """The store file as a whole is damaged or not an evstore store."""


class WriteError(EvstoreError):
    """A commit failed; nothing of it is on disk and memory was left unchanged."""


class DiskFullError(WriteError):
    """A commit failed for lack of disk space (or a file-size limit)."""


class FleetError(EvstoreError):
    """PostgreSQL (the fleet database) refused the connection string, could not be reached,
    or rejected what was sent to it."""


class MissingExtraError(EvstoreError, ImportError):
    """A part of evstore needs an optional extra (``evstore[fleet]``, ...) that is not
    installed; the message names it and how to install it."""


class ContainerdStatusError(EvstoreError, ValueError):
    """A containerd status file could not be loaded (what containerd would log)."""


class PostgresServerError(EvstoreError, RuntimeError):
    """The throwaway PostgreSQL server (tests, benchmark) could not be found, created,
    started or stopped."""


class BenchError(EvstoreError, RuntimeError):
    """A benchmark run could not measure what it set out to (a child or shipper failed)."""


class RuntimeUnavailableError(EvstoreError):
    """The runtime did not answer (socket gone, restarting, timeout): nothing was deleted."""
