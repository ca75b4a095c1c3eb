"""Alembic environment: runs the migrations on the connection ups_server.db.migrate passes in."""

from alembic import context

from ups_server.db.tables import metadata

target_metadata = metadata
connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `ups-server migrate` (ups_server.db.migrate)")
context.configure(connection=connection, target_metadata=target_metadata)
with context.begin_transaction():
    context.run_migrations()
