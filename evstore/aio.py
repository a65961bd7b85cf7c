"""The store for asyncio and trio programs: ``await open_async(path)`` gives an ``AsyncStore``
whose reads answer at once and whose updates wait for their commit without blocking the loop."""

from evstore._store.aio import (
    AsyncEntries,
    AsyncEntry,
    AsyncStatus,
    AsyncStore,
    Subscription,
    open_async,
)

__all__ = ["AsyncEntries", "AsyncEntry", "AsyncStatus", "AsyncStore", "Subscription", "open_async"]
