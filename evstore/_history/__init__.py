"""History: what the log means over time. The fold of an entry's events into its status, replay
of every entry at a point, restart counting and id resolution, on top of storage."""
