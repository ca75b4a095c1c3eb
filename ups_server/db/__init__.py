"""Database layer: SQLAlchemy Core tables, the async engine, embedded PostgreSQL, migrations."""
