"""The fleet's shipping functions under their earlier module name; ``evstore.fleet`` is the
documented one."""

from evstore.fleet import BatchReport, Hooks, ShipOptions, ShipReport, ship, ship_store

__all__ = ["BatchReport", "Hooks", "ShipOptions", "ShipReport", "ship", "ship_store"]
