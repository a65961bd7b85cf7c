"""Follow a node's CRI runtime and keep the history it throws away (``evstore record``).
Needs the ``cri`` extra."""

from evstore._views.cri import Recorder, SyncReport

__all__ = ["Recorder", "SyncReport"]
