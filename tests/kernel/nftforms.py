"""The real `nft` as the judge of svctrace's nft readers: load a dump into a scratch netns
with `nft -f` and list it back in every form a node can show.

Each call creates its own netns (the name holds this process's pid) and deletes it before
returning; it is also adopted by the rig pool, whose session finalizer, atexit hook and
SIGTERM handler delete it if the call never got to.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess

import pytest
import rig as rigmod
from rig import RigError

# form → the nft arguments that print it
LISTINGS = {
    "text": ["list", "ruleset"],
    "json": ["-j", "list", "ruleset"],
    "handles-stateless-numeric": ["-a", "-s", "-n", "list", "ruleset"],
}


class _Scratch:
    def __init__(self) -> None:
        self.name = f"svtnft{os.getpid() % 100000}{secrets.token_hex(2)}"
        self.created = False

    def __enter__(self) -> _Scratch:
        _run(["ip", "netns", "add", self.name])
        self.created = True
        with rigmod.POOL._lock:
            rigmod.POOL.rigs[f"nftforms-{self.name}"] = self  # type: ignore[assignment]
        return self

    def close(self) -> None:
        if self.created:
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
            self.created = False

    def __exit__(self, *exc: object) -> None:
        self.close()
        with rigmod.POOL._lock:
            rigmod.POOL.rigs.pop(f"nftforms-{self.name}", None)

    def nft(self, *args: str, input: str | None = None) -> str:
        return _run(["ip", "netns", "exec", self.name, "nft", *args], input=input)


def _run(argv: list[str], input: str | None = None) -> str:
    p = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RigError(f"{' '.join(argv)} failed (rc={p.returncode}): {p.stderr.strip()}")
    return p.stdout


def listed_forms(dump: str) -> dict[str, str]:
    """Load `dump` with `nft -f -` into a fresh netns; every listing of the result, and of
    each table alone: "table FAMILY NAME" (`nft list table`), "table-json FAMILY NAME"."""
    with _Scratch() as ns:
        ns.nft("-f", "-", input=dump)
        out = {form: ns.nft(*args) for form, args in LISTINGS.items()}
        for line in ns.nft("list", "tables").splitlines():
            _, family, name = line.split()
            out[f"table {family} {name}"] = ns.nft("list", "table", family, name)
            out[f"table-json {family} {name}"] = ns.nft("-j", "list", "table", family, name)
        return out


def nft_check(dump: str) -> str:
    """`nft -c -f -`: nft's own verdict on a file without loading it ('' when valid)."""
    with _Scratch() as ns:
        p = subprocess.run(["ip", "netns", "exec", ns.name, "nft", "-c", "-f", "-"], input=dump,
                           capture_output=True, text=True, timeout=120)
        return "" if p.returncode == 0 else p.stderr


def in_ci() -> bool:
    """CI=true (as tests/kernel/conftest.py says; `from conftest import` would find whichever
    conftest was imported first when several test folders run together)."""
    return os.environ.get("CI", "").lower() == "true"


def require_nft() -> None:
    """Skip without nft, except in CI (CI=true), where a kernel test that cannot run fails."""
    if shutil.which("nft") is None:
        why = "nft is not installed (apt-get install nftables)"
        if in_ci():
            pytest.fail(f"kernel test cannot run in CI: {why}", pytrace=False)
        pytest.skip(why)
