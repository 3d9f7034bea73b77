"""Read the rules of the node we run on: find which backend holds kube-proxy's chains, read only.

nftables: `read_node` also lists the node's nf_tables tables (`nft -j list tables`, `nft -j
list chains`) and reads, each with `nft -j list table FAMILY NAME`, kube-proxy's tables and
every other ip/ip6/inet table with base chains at the hooks a packet crosses (firewalld,
Docker, a CNI). iptables-nft's own tables are read with iptables-nft-save as before: nft
cannot print their xt matches. Only `list` commands run, so nothing is created or changed.
When kube-proxy's chains are in iptables and its nft tables exist too, the node is in a mode
split (`NodeRules.mode == "split"`, `NodeRules.rules` holds both).

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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from svctrace.errors import RulesError
from svctrace.model.nftables import ModeSplit, NftRuleset
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
    nft: NftRuleset | None = None              # nf_tables tables read with nft (read_node)
    nft_tables: list[str] = field(default_factory=list)      # "family name" of each read
    nft_skipped: list[str] = field(default_factory=list)     # "family name: why not"

    @property
    def split(self) -> bool:
        """kube-proxy's iptables chains in both iptables backends (RULES-BACKEND-SPLIT)."""
        return len(self.kube_backends) > 1

    @property
    def nft_kube_proxy(self) -> bool:
        return self.nft is not None and any(
            t.name == "kube-proxy" and t.family in ("ip", "ip6") for t in self.nft.tables)

    @property
    def mode(self) -> str:
        """"iptables", "nftables", or "split" (kube-proxy's rules of both modes are here)."""
        if self.nft_kube_proxy:
            return "split" if self.kube_backends else "nftables"
        return "iptables"

    @property
    def rules(self) -> Ruleset | NftRuleset | ModeSplit:
        """Everything read, for the tracer: both kinds of rules see every packet."""
        if self.nft is None or not self.nft.tables:
            return self.ruleset
        if not list(self.ruleset.rules()):
            return self.nft
        return ModeSplit(self.nft, self.ruleset, f"{self.reader} and nft on this node")


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


# hooks a packet to or through the node crosses; families the tracer follows
_HOOKS = frozenset({"prerouting", "input", "forward", "output", "postrouting"})
_FAMILIES = ("ip", "ip6", "inet")
_IPTABLES_TABLES = frozenset({"filter", "nat", "mangle", "raw", "security"})
_IPTABLES_BUILTINS = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})
SLOW_NOTE_AFTER = 1.0          # seconds before `on_slow` is told that nft is still listing


def run_nft(args: list[str], on_slow: Callable[[str], None] | None = None) -> str:
    """`nft ARGS` (a `list` command: read only); RulesError if it fails. `on_slow` hears once
    when it takes longer than SLOW_NOTE_AFTER (nft lists a 10,000-Service table in ~10 s)."""
    binary = shutil.which("nft")
    if binary is None:
        raise RulesError("nft is not installed", "install the nftables package")
    argv = [binary, *args]
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except OSError as err:
        raise RulesError(f"{' '.join(argv)}: {err.strerror}") from None
    out, errors = _wait(proc, args, on_slow)
    if proc.returncode != 0:
        reason = (errors.strip().splitlines() or ["failed"])[-1]
        hint = ("reading a node's rules needs root: run with sudo, or pass --rules FILE"
                if "ermission" in reason or "not permitted" in reason else None)
        raise RulesError(f"nft {' '.join(args)}: {reason}", hint)
    return out


def _wait(proc: subprocess.Popen[str], args: list[str],
          on_slow: Callable[[str], None] | None) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=SLOW_NOTE_AFTER)
    except subprocess.TimeoutExpired:
        pass
    if on_slow is not None:
        on_slow(f"reading nftables rules with `nft {' '.join(args)}` (slow on big nodes)…")
    try:
        return proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RulesError(f"nft {' '.join(args)}: no answer in 10 minutes") from None


def _nft_objects(args: list[str], on_slow: Callable[[str], None] | None) -> list[Any]:
    text = run_nft(["-j", *args], on_slow)
    try:
        doc = json.loads(text) if text.strip() else {"nftables": []}
    except ValueError:
        raise RulesError(f"nft -j {' '.join(args)}: not JSON") from None
    items = doc.get("nftables") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise RulesError(f"nft -j {' '.join(args)}: not nft's JSON")
    return items


def _iptables_nft_table(family: str, name: str, chains: list[dict[str, Any]]) -> bool:
    """A table iptables-nft made: named like an iptables table, its base chains named like
    iptables' built-ins."""
    own = [c for c in chains if c.get("family") == family and c.get("table") == name
           and "hook" in c]
    return family in ("ip", "ip6") and name in _IPTABLES_TABLES and bool(own) and \
        all(c.get("name") in _IPTABLES_BUILTINS for c in own)


def tables_to_read(tables: list[dict[str, Any]], chains: list[dict[str, Any]]
                   ) -> tuple[list[tuple[str, str]], list[str]]:
    """(tables to read, "family name: why not" for the others) from `nft -j list tables` and
    `nft -j list chains`: kube-proxy's, and every ip/ip6/inet table with a base chain at a
    hook a packet crosses; iptables-nft's tables are left to iptables-nft-save."""
    hooked = {(c.get("family"), c.get("table")) for c in chains if c.get("hook") in _HOOKS}
    read, skipped = [], []
    for t in tables:
        key = (str(t.get("family")), str(t.get("name")))
        if key[0] not in _FAMILIES:
            skipped.append(f"{key[0]} {key[1]}: family {key[0]} is not traced")
        elif _iptables_nft_table(*key, chains):
            skipped.append(f"{key[0]} {key[1]}: iptables-nft's table (read with "
                           "iptables-nft-save)")
        elif key in hooked or (key[1] == "kube-proxy" and key[0] in ("ip", "ip6")):
            read.append(key)
        else:
            skipped.append(f"{key[0]} {key[1]}: no base chain at a packet's hooks")
    return read, skipped


def read_node_nft(on_slow: Callable[[str], None] | None = None
                  ) -> tuple[NftRuleset, list[str], list[str]] | None:
    """(ruleset, tables read, tables skipped and why) of this node's nf_tables tables, or
    None when nft is not installed or there are no tables."""
    if shutil.which("nft") is None:
        return None
    tables = [o["table"] for o in _nft_objects(["list", "tables"], on_slow) if "table" in o]
    if not tables:
        return None
    chains = [o["chain"] for o in _nft_objects(["list", "chains"], on_slow) if "chain" in o]
    read, skipped = tables_to_read(tables, chains)
    objects: list[Any] = []
    for family, name in read:
        objects.extend(o for o in _nft_objects(["list", "table", family, name], on_slow)
                       if "metainfo" not in o)
    from svctrace.rules.nft_json import parse_nft_json

    ruleset = parse_nft_json(json.dumps({"nftables": objects}), "nft on this node")
    return ruleset, [f"{f} {n}" for f, n in read], skipped


def read_node(family: int = 4, on_slow: Callable[[str], None] | None = None) -> NodeRules:
    """Everything on this node a packet of `family` meets: the iptables backend holding
    kube-proxy's chains (read_node_rules) and the nf_tables tables (read_node_nft)."""
    nft = read_node_nft(on_slow)
    try:
        found = read_node_rules(family)
    except RulesError:
        if nft is None:
            raise
        found = NodeRules(Ruleset("no iptables on this node", family), "none", "none", [],
                          local_addresses(), os.uname().nodename)
    if nft is not None:
        found.nft, found.nft_tables, found.nft_skipped = nft
    return found


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
