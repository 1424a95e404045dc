"""Where jobs are kept: a narrow repository contract, on SQLite (the embedded default)
or on PostgreSQL (DATABASE_URL=postgresql://…, shared by several processes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.store.base import (
    Delivery,
    DeliveryRepository,
    JobExistsError,
    JobNotFoundError,
    JobRepository,
    MemberPrefs,
    MemberPrefsRepository,
    MigrationError,
    SchemaVersionError,
    Store,
    StoreBusyError,
    StoreError,
)
from bot.store.serialize import job_from_dict, job_to_dict
from bot.store.sqlite import (
    Migration,
    SqliteDatabase,
    SqliteJobRepository,
    SqliteMemberPrefsRepository,
    SqliteStore,
    load_migrations,
    sqlite_path_from_url,
)
from bot.store.sqlite import open_store as open_sqlite_store

if TYPE_CHECKING:
    from bot.store.postgres import PostgresStore

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(database_url: str) -> bool:
    return database_url.strip().lower().startswith(POSTGRES_SCHEMES)


async def open_store(database_url: str, **options: Any) -> SqliteStore | PostgresStore:
    """Open and migrate the store DATABASE_URL names: PostgreSQL for postgresql:// (or
    postgres://) URLs, SQLite for everything else. `options` go to that backend's opener."""
    if is_postgres_url(database_url):
        # Imported here: a SQLite deployment never loads asyncpg.
        from bot.store.postgres import open_postgres_store

        return await open_postgres_store(database_url, **options)
    return await open_sqlite_store(database_url, **options)


def redact_database_url(database_url: str) -> str:
    """The URL as it may be shown or logged: a PostgreSQL password becomes ***."""
    if not is_postgres_url(database_url):
        return database_url
    from bot.store.postgres import redact_url

    return redact_url(database_url)


__all__ = [
    "Delivery",
    "DeliveryRepository",
    "JobExistsError",
    "JobNotFoundError",
    "JobRepository",
    "MemberPrefs",
    "MemberPrefsRepository",
    "Migration",
    "MigrationError",
    "SchemaVersionError",
    "SqliteDatabase",
    "SqliteJobRepository",
    "SqliteMemberPrefsRepository",
    "SqliteStore",
    "Store",
    "StoreBusyError",
    "StoreError",
    "is_postgres_url",
    "job_from_dict",
    "job_to_dict",
    "load_migrations",
    "open_sqlite_store",
    "open_store",
    "redact_database_url",
    "sqlite_path_from_url",
]
