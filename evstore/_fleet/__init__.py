"""The fleet: shipping a store's log to PostgreSQL, the database contract, and a private
PostgreSQL server for tests and the benchmark. Needs the ``fleet`` extra (psycopg)."""
