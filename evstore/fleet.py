"""Ship a store's log to PostgreSQL, every event exactly once (``evstore ship``). Needs the
``fleet`` extra (psycopg): without it, importing this module raises ``MissingExtraError``."""

from evstore._fleet.shipping import (
    BatchReport,
    Hooks,
    ShipOptions,
    ShipReport,
    ship,
    ship_store,
)

__all__ = ["BatchReport", "Hooks", "ShipOptions", "ShipReport", "ship", "ship_store"]
