"""The completion cache: live names kept for CACHE_TTL seconds, so a burst of TABs asks the
cluster once.

A TAB often runs as root, and the cache directory sits in a place other users might reach
(`XDG_CACHE_HOME` pointing at a shared directory, a home made world-writable). So the
directory is trusted only when it is a real directory (not a symlink), owned by this user
and writable by nobody else; otherwise there is no cache at all. Every file is opened
relative to that verified directory, without following symlinks; new files are created with
O_EXCL under a random name and renamed into place, so a planted file or symlink can neither
be written through nor read from.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time

CACHE_TTL = 10.0                  # seconds a live answer is reused
MAX_CACHE_FILE = 1024 * 1024      # bytes: a cache file larger than this is not ours


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "svctrace")


def _file_name(key: list[str | None]) -> str:
    return f"names-{hashlib.sha256(json.dumps(key).encode()).hexdigest()[:24]}.json"


def _open_verified_dir(create: bool) -> int | None:
    """A descriptor of the cache directory if it is safe to use (see the module doc)."""
    path = cache_dir()
    if create:
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            os.mkdir(path, 0o700)
        except OSError:
            pass                        # exists already (checked below), or cannot be made
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    info = os.fstat(fd)
    if (not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid()
            or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)):
        os.close(fd)
        return None
    return fd


def cache_read(key: list[str | None], now: float | None = None) -> list[str] | None:
    """The cached names for `key` if written less than CACHE_TTL seconds ago."""
    dir_fd = _open_verified_dir(create=False)
    if dir_fd is None:
        return None
    try:
        fd = os.open(_file_name(key), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=dir_fd)
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            age = (time.time() if now is None else now) - info.st_mtime
            if (not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid()
                    or info.st_size > MAX_CACHE_FILE or not 0 <= age < CACHE_TTL):
                return None
            data = json.loads(f.read(MAX_CACHE_FILE))
    except (OSError, ValueError):
        return None
    finally:
        os.close(dir_fd)
    names = data.get("names") if isinstance(data, dict) else None
    return [str(n) for n in names] if isinstance(names, list) else None


def cache_write(key: list[str | None], names: list[str]) -> None:
    """Write atomically (a TAB in another terminal may be reading); mode 0600."""
    dir_fd = _open_verified_dir(create=True)
    if dir_fd is None:
        return
    tmp = f".names-{os.urandom(8).hex()}.tmp"        # unpredictable; O_EXCL below
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=dir_fd)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"names": names}, f)
        os.replace(tmp, _file_name(key), src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
    finally:
        os.close(dir_fd)
