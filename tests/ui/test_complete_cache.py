"""The completion cache refuses a directory another user can write to or owns, and never
writes through (or reads from) a planted symlink — the attack of a world-writable cache
directory with symlinks in it, run against root's TAB."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from ui_helpers import cannot_run

from svctrace.cli import complete, complete_cache

KEY: list[str | None] = ["services", None, None, None, None]
NOBODY = 65534


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "svctrace"


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Live look-ups answer from a fake cluster and are counted."""
    calls: list[str] = []

    def fake(kind: str, *args: Any) -> list[str]:
        calls.append(kind)
        return ["api", "web"]

    monkeypatch.setattr(complete, "_list_names", fake)
    return calls


def planted_link(cache: Path, target: Path) -> Path:
    link = cache / complete_cache._file_name(KEY)
    link.symlink_to(target)
    return link


def test_a_good_directory_is_used(cache: Path, lookups: list[str]) -> None:
    """The control: the cache works, in a private directory, with private files."""
    for _ in range(3):
        assert complete.live_names("services", None, None, None) == ["api", "web"]
    assert lookups == ["services"]
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert [stat.S_IMODE(f.stat().st_mode) for f in cache.iterdir()] == [0o600]


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770, 0o720], ids=[
    "world-writable", "sticky-world-writable", "group-writable", "group-write-only"])
def test_a_directory_others_can_write_is_not_used(cache: Path, lookups: list[str],
                                                  tmp_path: Path, mode: int) -> None:
    cache.mkdir(parents=True)
    cache.chmod(mode)
    target = tmp_path / "victim"
    target.write_text("precious\n")
    planted_link(cache, target)
    for _ in range(2):
        assert complete.live_names("services", None, None, None) == ["api", "web"]
    assert lookups == ["services", "services"]           # no cache: asked every time
    assert target.read_text() == "precious\n"
    assert sorted(p.name for p in cache.iterdir()) == [complete_cache._file_name(KEY)]


def test_a_directory_owned_by_another_user_is_not_used(cache: Path, lookups: list[str]) -> None:
    if os.geteuid() != 0:
        cannot_run("giving the directory to another user needs root")
    cache.mkdir(parents=True, mode=0o700)
    os.chown(cache, NOBODY, NOBODY)
    complete.live_names("services", None, None, None)
    complete.live_names("services", None, None, None)
    assert lookups == ["services", "services"]
    assert list(cache.iterdir()) == []


def test_a_symlinked_directory_is_not_used(cache: Path, lookups: list[str],
                                           tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    cache.parent.mkdir()
    cache.symlink_to(elsewhere)
    complete.live_names("services", None, None, None)
    complete.live_names("services", None, None, None)
    assert lookups == ["services", "services"]
    assert list(elsewhere.iterdir()) == []


def test_a_planted_symlink_is_replaced_not_followed(cache: Path, lookups: list[str],
                                                    tmp_path: Path) -> None:
    """Even in a good directory, a symlink where a cache file goes is neither read nor
    written through."""
    cache.mkdir(parents=True, mode=0o700)
    target = tmp_path / "victim.json"
    target.write_text('{"names": ["planted"]}')
    link = planted_link(cache, target)
    assert complete_cache.cache_read(KEY) is None             # not read through the link
    assert complete.live_names("services", None, None, None) == ["api", "web"]
    assert target.read_text() == '{"names": ["planted"]}'
    assert not link.is_symlink()                              # replaced by our own file
    assert complete_cache.cache_read(KEY) == ["api", "web"]


def test_temporary_names_are_not_predictable(cache: Path, lookups: list[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A planted file at every name the old scheme used (`FILE.PID.tmp`) is not touched."""
    cache.mkdir(parents=True, mode=0o700)
    final = cache / complete_cache._file_name(KEY)
    old_tmp = Path(f"{final}.{os.getpid()}.tmp")
    old_tmp.symlink_to(cache.parent / "victim")
    complete_cache.cache_write(KEY, ["x"])
    assert not (cache.parent / "victim").exists()
    assert complete_cache.cache_read(KEY) == ["x"]
    assert sorted(p.name for p in cache.iterdir()) == sorted([final.name, old_tmp.name])
