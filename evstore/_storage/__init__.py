"""Storage: the only layer that imports ``lmdb``. Records on disk (log, index, snapshots,
retention floor), the group committer, the probe that walks a file before it is mapped, and the
recovery that rebuilds every entry on open. Knows nothing of pods, rendering or PostgreSQL."""
