"""The throwaway PostgreSQL cluster of tests/pg.py: where it finds the binaries, and that
without them the PostgreSQL tests skip saying why, but fail in CI."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from tests import pg


def test_missing_binaries_are_named_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg.shutil, "which", lambda name: None)
    monkeypatch.setattr(pg.glob, "glob", lambda pattern: [])
    with pytest.raises(pg.ClusterUnavailable, match=r"initdb and pg_ctl were not found.*install"):
        pg.find_pg_bin()


def test_the_newest_debian_install_is_found_off_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for version in ("9", "13", "15"):
        folder = tmp_path / "usr/lib/postgresql" / version / "bin"
        folder.mkdir(parents=True)
        (folder / "initdb").touch()
        (folder / "pg_ctl").touch()
    monkeypatch.setattr(pg.shutil, "which", lambda name: None)
    monkeypatch.setattr(
        pg.glob,
        "glob",
        lambda pattern: [str(p) for p in tmp_path.glob("usr/lib/postgresql/*/bin/initdb")],
    )
    assert pg.find_pg_bin() == tmp_path / "usr/lib/postgresql/15/bin"


def test_without_postgres_a_developer_is_skipped_and_ci_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL tests skipped: no initdb"):
        pg.skip_or_fail("no initdb")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="cannot be skipped in CI: no initdb"):
        pg.skip_or_fail("no initdb")


async def test_the_cluster_listens_on_loopback_only_and_each_test_has_its_own_database(
    pg_cluster: pg.PgCluster, pg_url: str
) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
        assert await conn.fetchval("SHOW unix_socket_directories") == str(pg_cluster.root)
        assert await conn.fetchval("SELECT current_database()") == pg_url.rsplit("/", 1)[1]
        assert (
            await conn.fetchval("SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'") == 0
        )
    finally:
        await conn.close()
    # A password is required: the cluster is not open to every local user.
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(pg_url.replace(pg_cluster.password, "wrong"))
