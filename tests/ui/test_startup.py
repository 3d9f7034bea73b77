"""Start-up: --help, --version and a TAB import none of the heavy libraries."""

from __future__ import annotations

import re
import sys

import pytest
from ui_helpers import SNAPSHOT, run

HEAVY = ("kubernetes", "scapy", "iptc", "rich")


def imported(args: list[str], env: dict[str, str]) -> set[str]:
    proc = run([sys.executable, "-X", "importtime", "-m", "svctrace", *args], env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", proc.stderr, re.M))


@pytest.mark.parametrize("args", [
    ["--help"],
    ["--version"],
    ["explain", "--help"],
    ["__complete", "--", "explain", "--snapshot", str(SNAPSHOT), "svc/w"],
    ["__complete", "--", "explain", "--"],
    ["completion", "bash"],
], ids=["help", "version", "explain-help", "tab-services", "tab-options", "completion-script"])
def test_no_heavy_imports(args: list[str], user_env: dict[str, str]) -> None:
    modules = imported(args, user_env)
    assert "svctrace.cli.main" in modules           # importtime did report
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert heavy == [], f"svctrace {' '.join(args)} imports {heavy[:5]}"
    assert "rich.console" not in modules


def test_version_names_the_libraries(user_env: dict[str, str]) -> None:
    proc = run([sys.executable, "-m", "svctrace", "--version"], env=user_env)
    assert proc.returncode == 0 and proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[0] == "svctrace 0.1.0"
    for label in ("kubernetes client", "scapy", "python-iptables", "typer", "rich"):
        assert any(re.match(rf"{label} (\d[\w.]*|not installed)$", line) for line in lines), label


def test_version_lists_iptables_binaries_found(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: object) -> None:
    from pathlib import Path

    from svctrace.cli import version
    bindir = Path(str(tmp_path))
    fake = bindir / "iptables-legacy"
    fake.write_text("#!/bin/sh\necho 'iptables v1.8.9 (legacy)'\n")
    fake.chmod(0o755)
    slow = bindir / "nft"
    slow.write_text("#!/bin/sh\nsleep 5\n")
    slow.chmod(0o755)
    monkeypatch.setattr(version, "_which", lambda name: str(bindir / name)
                        if (bindir / name).exists() else None)
    found = version.binary_versions(("iptables", "iptables-legacy", "nft"))
    assert found == [("iptables-legacy", "v1.8.9 (legacy)"), ("nft", "(no answer to --version)")]


def test_version_without_a_library(monkeypatch: pytest.MonkeyPatch) -> None:
    from svctrace.cli import version
    assert version.library_version("no-such-distribution-svctrace") == "not installed"
