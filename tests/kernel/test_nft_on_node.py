"""On-node reading of nftables, in a netns standing in for a node: kube-proxy's nft tables
only, iptables only (iptables-nft), and both (a mode split). `read_node` must find and read
the right tables, name what it left out and why, read the same rules nft lists, and change
nothing: `nft list ruleset`, iptables-nft-save, iptables-legacy-save (minus timestamps) and
/proc/net/ip{,6}_tables_names byte-for-byte equal before and after.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from nftforms import require_nft
from nodeexec import NodeNetns

pytestmark = pytest.mark.kernel

FIX = Path(__file__).resolve().parent.parent / "fixtures"
KP_NFT = (FIX / "rig-v1.36" / "node2.nft.txt").read_text()
KP_IPTABLES = (FIX / "rig-v1.36" / "node1.iptables-save.txt").read_text()
OTHERS = (FIX / "nft" / "docker-like.nft").read_text()

# run inside the netns: read the node, and read `nft list ruleset` the other way for comparison
SCRIPT = """
import json, subprocess
from svctrace.rules.detect import parse_rules, rules_mode
import svctrace.rules.node as node_module
node_module.SLOW_NOTE_AFTER = 0.0             # every nft call counts as slow: each says so
notes = []
node = node_module.read_node(on_slow=notes.append)
listed = parse_rules(subprocess.run(["nft", "list", "ruleset"], capture_output=True,
                                    text=True, check=True).stdout or "table ip empty {\\n}\\n",
                     "listing")
tables = node.nft.tables if node.nft else ()
same = bool(tables) and all(t == listed.table(t.family, t.name) for t in tables)
print(json.dumps({"mode": node.mode, "rules_mode": rules_mode(node.rules),
                  "listing_mode": rules_mode(listed) if listed.tables[0].name != "empty" else None,
                  "tables": sorted(node.nft_tables), "skipped": sorted(node.nft_skipped),
                  "kube_backends": node.kube_backends, "same_as_listing": same,
                  "nft_rules": sum(1 for _ in node.nft.rules()) if node.nft else 0,
                  "iptables_rules": sum(1 for _ in node.ruleset.rules()), "notes": notes}))
"""


@dataclass(frozen=True)
class Node:
    id: str
    nft: tuple[str, ...]              # texts loaded with nft -f
    iptables: tuple[str, ...]         # backends KP_IPTABLES is restored into
    mode: str
    tables: list[str]                 # tables read with nft
    skipped: list[str]                # "family name" of the tables left out
    nft_calls: int                    # nft list commands read_node runs
    listing_mode: str | None          # rules_mode of `nft list ruleset` (None: it is empty)


NODES = [
    Node("nftables-only", (KP_NFT, OTHERS), (), "nftables",
         ["inet cni", "ip docker-filter", "ip docker-nat", "ip kube-proxy", "ip6 kube-proxy"],
         ["netdev cni-ingress"], 7, "nftables"),
    Node("iptables-nft-only", (), ("nft",), "iptables", [],
         ["ip filter", "ip mangle", "ip nat"], 2, "iptables"),
    Node("iptables-legacy-only", (), ("legacy",), "iptables", [], [], 1, None),
    Node("mode-split", (KP_NFT,), ("legacy",), "split", ["ip kube-proxy", "ip6 kube-proxy"],
         [], 4, "nftables"),
    # iptables-nft's KUBE-* chains beside kube-proxy's nft tables: even nft's own listing
    # shows both modes
    Node("mode-split-iptables-nft", (KP_NFT,), ("nft",), "split",
         ["ip kube-proxy", "ip6 kube-proxy"], ["ip filter", "ip mangle", "ip nat"], 4, "split"),
]


@pytest.fixture(scope="module", autouse=True)
def _nft_installed() -> None:
    require_nft()


def _snapshot(ns: NodeNetns) -> tuple[object, str]:
    return ns.state(), ns.must(["nft", "list", "ruleset"])


@pytest.fixture(scope="module", params=NODES, ids=lambda n: n.id)
def reading(request: pytest.FixtureRequest) -> tuple[Node, dict, list[str]]:
    node: Node = request.param
    with NodeNetns(f"nft{NODES.index(node)}") as ns:
        for backend in node.iptables:
            ns.load(KP_IPTABLES, backend)
        for text in node.nft:
            ns.must(["nft", "-f", "-"], input=text)
        before = _snapshot(ns)
        proc = ns.python("-c", SCRIPT)
        after = _snapshot(ns)
    assert proc.returncode == 0, proc.stderr
    changes = before[0].differences(after[0])  # type: ignore[attr-defined]
    if before[1] != after[1]:
        changes.append(f"nft list ruleset changed:\n{before[1]}\n---\n{after[1]}")
    return node, json.loads(proc.stdout), changes


def test_nothing_is_created_or_changed(reading: tuple[Node, dict, list[str]]) -> None:
    _, _, changes = reading
    assert changes == []


def test_mode_and_tables(reading: tuple[Node, dict, list[str]]) -> None:
    node, got, _ = reading
    assert got["mode"] == node.mode
    assert got["rules_mode"] == node.mode
    assert got["tables"] == node.tables
    assert [s.split(":")[0] for s in got["skipped"]] == node.skipped
    assert (got["nft_rules"] > 0) == bool(node.tables)
    assert (got["iptables_rules"] > 0) == bool(node.iptables)
    assert bool(got["kube_backends"]) == bool(node.iptables)


def test_nft_tables_read_are_what_nft_lists(reading: tuple[Node, dict, list[str]]) -> None:
    node, got, _ = reading
    assert got["same_as_listing"] == bool(node.tables)


def test_slow_nft_calls_are_announced(reading: tuple[Node, dict, list[str]]) -> None:
    node, got, _ = reading
    assert got["notes"][0] == \
        "reading nftables rules with `nft -j list tables` (slow on big nodes)…"
    assert len(got["notes"]) == node.nft_calls     # list tables, list chains, each table


def test_the_listing_alone_tells_the_mode(reading: tuple[Node, dict, list[str]]) -> None:
    node, got, _ = reading
    assert got["listing_mode"] == node.listing_mode
