"""Alembic environment: runs migrations on the connection :func:`personalize.db.upgrade` hands in."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from personalize import schema  # noqa: F401  (registers every table on the metadata)
from personalize.db import db

config = context.config
target_metadata = db.metadata


def run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    engine = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as conn:
        run(conn)
