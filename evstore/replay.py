"""Every entry as it stood at a point of the log: ``states_at(store, seq=..., time=...)``."""

from evstore._history.replay import EntryState, states_at

__all__ = ["EntryState", "states_at"]
