"""The nftables examples (examples/*/node2.nft.txt, written by examples/generate.py) are what
nft itself lists: loaded with `nft -f` into a scratch netns, nft's own listing (text and JSON)
reads back to the same ruleset. And explain on them tells the same story as on node1's
iptables-save of the same example."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from nftforms import listed_forms, require_nft

from svctrace.rules.detect import parse_rules

pytestmark = pytest.mark.kernel

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = ["web", "broken"]


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_is_what_nft_lists(example: str) -> None:
    require_nft()
    path = REPO / "examples" / example / "node2.nft.txt"
    text = path.read_text()
    ours = parse_rules(text, str(path))
    forms = listed_forms(text)
    assert parse_rules(forms["text"], "nft list ruleset") == ours
    assert parse_rules(forms["json"], "nft -j list ruleset") == ours


def _explain(example: str, rules: str, node: str) -> dict:
    folder = REPO / "examples" / example
    done = subprocess.run([sys.executable, "-m", "svctrace", "explain", "svc/web",
                           "--snapshot", str(folder / "cluster.json"),
                           "--rules", str(folder / rules), "--node", node, "-o", "json"],
                          cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={"SVCTRACE_NO_LOCAL_RULES": "1", "PATH": "/usr/bin:/bin",
                               "PYTHONPATH": str(REPO)})
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("example", EXAMPLES)
def test_both_modes_tell_the_same_story(example: str) -> None:
    nft = _explain(example, "node2.nft.txt", "node2")
    ipt = _explain(example, "node1.iptables-save.txt", "node1")
    assert (nft["rules"]["mode"], ipt["rules"]["mode"]) == ("nftables", "iptables")
    assert nft["verdict"] == ipt["verdict"]
    assert [(d["kind"], d["detail"]) for d in nft["drift"]] == \
        [(d["kind"], d["detail"]) for d in ipt["drift"]]
    assert sorted(f["id"] for f in nft["findings"]) == sorted(f["id"] for f in ipt["findings"])
