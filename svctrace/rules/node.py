"""Read the rules of the node we run on: find which backend holds kube-proxy's chains, read only.

Never opens a table in a way that can create or change one: a legacy table exists iff it is
listed in /proc/net/ip_tables_names (iptables-legacy-save reads without creating; python-iptables
and `iptables-legacy -L` would instantiate an empty table on an nft node), and nft rules are read
with iptables-nft-save. python-iptables is used for legacy tables only when iptables-legacy-save
is not installed, and only for tables that already exist.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

from svctrace.errors import RulesError
from svctrace.model.ruleset import Ruleset

_PROC_NAMES = {4: "/proc/net/ip_tables_names", 6: "/proc/net/ip6_tables_names"}
_SAVE = {("legacy", 4): "iptables-legacy-save", ("legacy", 6): "ip6tables-legacy-save",
         ("nft", 4): "iptables-nft-save", ("nft", 6): "ip6tables-nft-save"}


@dataclass
class NodeRules:
    """What was read from this node, and how."""

    ruleset: Ruleset
    backend: str                               # "legacy" or "nft"
    reader: str                                # the command or library that read it
    kube_backends: list[str] = field(default_factory=list)   # backends holding KUBE-* chains
    local_addresses: list[str] = field(default_factory=list)
    hostname: str = ""

    @property
    def split(self) -> bool:
        return len(self.kube_backends) > 1


def legacy_tables(family: int = 4) -> list[str]:
    """Tables that exist in the legacy (x_tables) backend, read without creating any."""
    try:
        with open(_PROC_NAMES[family]) as fh:
            return [line.strip() for line in fh if line.strip()]
    except OSError:
        return []


def _run_save(backend: str, family: int) -> str | None:
    binary = shutil.which(_SAVE[(backend, family)])
    if binary is None:
        return None
    try:
        proc = subprocess.run([binary], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise RulesError(f"{binary}: {err}") from None
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        if "Permission denied" in reason or os.geteuid() != 0:
            raise RulesError(f"{binary}: {reason}",
                             "reading a node's rules needs root: run with sudo, or pass "
                             "--rules FILE") from None
        raise RulesError(f"{binary}: {reason}")
    return proc.stdout


def _has_kube_chains(text: str | None) -> bool:
    return text is not None and ":KUBE-SERVICES " in text


def read_node_rules(family: int = 4) -> NodeRules:
    """The ruleset of the backend that holds kube-proxy's chains on this node."""
    from svctrace.rules.iptables_save import parse_iptables_save

    texts: dict[str, tuple[str, str]] = {}
    if legacy_tables(family):
        legacy = _run_save("legacy", family)
        if legacy is None:
            legacy = read_legacy_with_iptc(family)
            texts["legacy"] = (legacy, "python-iptables")
        else:
            texts["legacy"] = (legacy, _SAVE[("legacy", family)])
    nft = _run_save("nft", family)
    if nft is not None:
        texts["nft"] = (nft, _SAVE[("nft", family)])
    if not texts:
        raise RulesError("cannot read this node's rules: neither iptables-legacy-save nor "
                         "iptables-nft-save is installed",
                         "install the iptables package, or pass --rules FILE")
    kube = [b for b, (text, _) in texts.items() if _has_kube_chains(text)]
    backend = kube[0] if kube else ("nft" if "nft" in texts else "legacy")
    text, reader = texts[backend]
    if not text.strip():  # no rules there at all, so no KUBE chains: the caller says so, skips
        return NodeRules(Ruleset(f"{reader} on this node", family), backend, reader, kube,
                         local_addresses(), os.uname().nodename)
    ruleset = parse_iptables_save(text, f"{reader} on this node")
    return NodeRules(ruleset, backend, reader, kube, local_addresses(), os.uname().nodename)


def local_addresses() -> list[str]:
    """Every address of every interface here (what the routing table calls `local`)."""
    try:
        proc = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True,
                              timeout=10, check=False)
        data = json.loads(proc.stdout or "[]")
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return []
    return sorted({a["local"] for link in data for a in link.get("addr_info", [])
                   if "local" in a})


def read_legacy_with_iptc(family: int = 4) -> str:
    """Legacy tables through python-iptables, printed as iptables-save would (fallback reader).

    Only tables listed in /proc/net/ip_tables_names are opened, so nothing is created, and no
    table is ever committed.
    """
    os.environ.setdefault("SETUPTOOLS_USE_DISTUTILS", "stdlib")   # halves iptc's import time
    try:
        import iptc  # type: ignore[import-untyped]
    except Exception as err:  # noqa: BLE001 - a missing C library surfaces as many types
        raise RulesError(f"python-iptables cannot be loaded: {err}") from None
    lines = ["# Generated by svctrace from python-iptables (legacy)"]
    for name in legacy_tables(family):
        table = (iptc.Table(name, autocommit=False) if family == 4
                 else iptc.Table6(name, autocommit=False))
        table.refresh()
        lines.append(f"*{name}")
        for chain in table.chains:
            policy = chain.get_policy().name if chain.is_builtin() else "-"
            lines.append(f":{chain.name} {policy} [0:0]")
        for chain in table.chains:
            lines.extend(iptc_rule_text(chain.name, rule) for rule in chain.rules)
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def iptc_rule_text(chain: str, rule: Any) -> str:
    """One python-iptables rule as an iptables-save line (order: basic, matches, target)."""
    r = rule
    parts = [f"-A {chain}"]
    for flag, value in (("-s", r.src), ("-d", r.dst)):
        parts.extend(_address_option(flag, value))
    for flag, value in (("-i", r.in_interface), ("-o", r.out_interface)):
        if value:
            parts.append(f"! {flag} {value[1:]}" if value.startswith("!") else f"{flag} {value}")
    proto = r.protocol
    if proto and proto not in ("ip", "all", "0"):
        parts.append(f"! -p {proto[1:]}" if proto.startswith("!") else f"-p {proto}")
    for match in r.matches:
        parts.append(f"-m {match.name}")
        parts.extend(_params(match.get_all_parameters()))
    target = r.target
    if target is not None and target.name:
        parts.append(f"{'-g' if target.goto else '-j'} {target.name}")
        parts.extend(_params(target.get_all_parameters()))
    return " ".join(parts)


def _address_option(flag: str, value: str | None) -> list[str]:
    if not value or value.lstrip("!") in ("0.0.0.0/0.0.0.0", "::/0"):
        return []
    negated = value.startswith("!")
    address, _, mask = value.lstrip("!").partition("/")
    if mask and "." in mask:
        mask = str(sum(bin(int(o)).count("1") for o in mask.split(".")))
    text = f"{flag} {address}/{mask}" if mask else f"{flag} {address}"
    return [f"! {text}" if negated else text]


_PLAIN = re.compile(r"[A-Za-z0-9_./:,!-]+")
_STRING = re.compile(r"[A-Za-z0-9_-]+")


def _quote(value: str, strict: bool) -> str:
    """Quote as iptables-save does (xtables_save_string): escape `\\`, `"` and `'`."""
    if (_STRING if strict else _PLAIN).fullmatch(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("'", "\\'")
    return f'"{escaped}"'


def _params(params: dict[str, list[str]]) -> list[str]:
    out = []
    for name, values in params.items():
        negated = bool(values) and values[0] == "!"
        vals = values[1:] if negated else values
        quoted = [_quote(v, strict=name == "comment") for v in vals]
        out.append(" ".join((["!"] if negated else []) + [f"--{name}", *quoted]))
    return out
