"""`svctrace --version`: the versions of svctrace, the libraries that matter, and the iptables
binaries on this machine.

Fast on purpose (it is a start-up path): library versions come from the installed package
metadata (importlib.metadata), never by importing kubernetes, scapy, iptc or rich; the
iptables binaries are asked `--version` in parallel, with a short timeout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from svctrace import __version__

# (distribution name on PyPI, what a person calls it)
LIBRARIES = (
    ("kubernetes", "kubernetes client"),
    ("scapy", "scapy"),
    ("python-iptables", "python-iptables"),
    ("typer", "typer"),
    ("rich", "rich"),
)

# iptables-legacy and iptables-nft are the two backends kube-proxy may use (iptables mode).
IPTABLES_BINARIES = ("iptables", "iptables-legacy", "iptables-nft", "nft")
BINARY_TIMEOUT = 0.5     # seconds; a wedged binary must not stall --version


def version_text() -> str:
    """Lines of `name version`, svctrace first."""
    lines = [f"svctrace {__version__}",
             f"python {sys.version.split()[0]}"]
    lines += [f"{label} {library_version(dist)}" for dist, label in LIBRARIES]
    lines += [f"{name} {found}" for name, found in binary_versions(IPTABLES_BINARIES)]
    return "\n".join(lines)


def library_version(distribution: str) -> str:
    """The installed version of a distribution, or `not installed`."""
    from importlib import metadata
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def binary_versions(names: tuple[str, ...]) -> list[tuple[str, str]]:
    """(name, version text) for each binary found on PATH (or in the sbin directories),
    asked in parallel; binaries not found are left out."""
    running = []
    for name in names:
        path = _which(name)
        if path is None:
            continue
        try:
            proc = subprocess.Popen([path, "--version"], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                    text=True)
        except OSError:
            continue
        running.append((name, proc))
    return [(name, _answer(proc)) for name, proc in running]


def _which(name: str) -> str | None:
    # iptables lives in /usr/sbin, which is not on a normal user's PATH
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/sbin", "/sbin"])
    return shutil.which(name, path=search)


def _answer(proc: subprocess.Popen[str]) -> str:
    try:
        out, _ = proc.communicate(timeout=BINARY_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return "(no answer to --version)"
    text = (out or "").strip().splitlines()
    return _short(text[0]) if text else "(version unknown)"


def _short(line: str) -> str:
    """`iptables v1.8.9 (nf_tables)` → `v1.8.9 (nf_tables)`: the name is already printed."""
    words = line.split(None, 1)
    return words[1] if len(words) == 2 and words[1][:1] in "v0123456789" else line
