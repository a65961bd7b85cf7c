"""Bring containerd's per-file status checkpoints into a store (``evstore import-containerd``)."""

from evstore._views.importer import ImportReport, import_containerd

__all__ = ["ImportReport", "import_containerd"]
