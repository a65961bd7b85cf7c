"""The embedded store's API objects: ``Store`` with its entry collections, and ``AsyncStore``."""
