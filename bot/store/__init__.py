"""Where jobs are kept: a narrow repository contract and its SQLite implementation."""

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
    open_store,
    sqlite_path_from_url,
)

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
    "job_from_dict",
    "job_to_dict",
    "load_migrations",
    "open_store",
    "sqlite_path_from_url",
]
