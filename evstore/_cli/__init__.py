"""The ``evstore`` command line (click), with its table and JSON rendering."""
