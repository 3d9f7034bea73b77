"""Which chains the kernel runs at each netfilter hook, and in which order.

Every base chain of every table of the packet's family (`ip`/`ip6`, and `inet`) runs at its
hook in priority order; iptables built-in chains (a mode switch leaves them behind) run at the
classic priorities among them (raw -300, mangle -150, nat -100 / 100, filter 0, security 50).
"""

from __future__ import annotations

from dataclasses import dataclass

from svctrace.model.nftables import NftChain, NftRuleset, NftTable
from svctrace.model.ruleset import Chain, Ruleset
from svctrace.model.trace import Assumption

FAMILIES = {4: ("ip", "inet"), 6: ("ip6", "inet")}
IPT_CHAINS = {   # iptables-nft / -legacy built-in chains → (hook, priority)
    ("raw", "PREROUTING"): ("prerouting", -300), ("raw", "OUTPUT"): ("output", -300),
    ("mangle", "PREROUTING"): ("prerouting", -150), ("mangle", "INPUT"): ("input", -150),
    ("mangle", "FORWARD"): ("forward", -150), ("mangle", "OUTPUT"): ("output", -150),
    ("mangle", "POSTROUTING"): ("postrouting", -150),
    ("nat", "PREROUTING"): ("prerouting", -100), ("nat", "OUTPUT"): ("output", -100),
    ("nat", "INPUT"): ("input", 100), ("nat", "POSTROUTING"): ("postrouting", 100),
    ("filter", "INPUT"): ("input", 0), ("filter", "FORWARD"): ("forward", 0),
    ("filter", "OUTPUT"): ("output", 0),
    ("security", "INPUT"): ("input", 50), ("security", "FORWARD"): ("forward", 50),
    ("security", "OUTPUT"): ("output", 50),
}
IP_HOOKS = ("prerouting", "input", "forward", "output", "postrouting")


@dataclass(frozen=True, slots=True)
class HookChain:
    """One chain the kernel runs at a hook: an nft base chain or an iptables built-in chain."""

    hook: str
    priority: int
    nat: bool
    nft: NftChain | None = None
    iptables: Chain | None = None
    order: int = 0                # among equal priorities: lower runs first


def hook_chains(ruleset: NftRuleset | None, iptables: Ruleset | None, family: int
                ) -> dict[str, list[HookChain]]:
    """Every chain at each hook for `family`, in the order the kernel runs them: by priority;
    on equal priorities the hook registered last runs first (nf_hook_entries_grow inserts a
    new hook before existing ones of the same priority), i.e. the chain created last, and
    nft chains before the iptables chains of a mode switch that left those behind."""
    found: list[HookChain] = []
    for index, chain in enumerate(ruleset.chains() if ruleset else ()):
        if chain.hook and chain.table_family in FAMILIES[family]:
            found.append(HookChain(chain.hook, chain.priority or 0, chain.type == "nat",
                                   nft=chain, order=-index))
    if iptables is not None and iptables.family == family:
        for (table, name), (hook, prio) in IPT_CHAINS.items():
            ipt = iptables.chain(table, name)
            if ipt is not None:
                found.append(HookChain(hook, prio, table == "nat", iptables=ipt, order=1))
    by_hook: dict[str, list[HookChain]] = {}
    for hc in sorted(found, key=lambda h: (h.priority, h.order)):
        by_hook.setdefault(hc.hook, []).append(hc)
    return by_hook


def unevaluated_chains(ruleset: NftRuleset | None, family: int, local_out: bool
                       ) -> list[Assumption]:
    """Base chains with rules that the packet may meet but the engine does not run: ingress
    and egress hooks (per device, before prerouting / after postrouting)."""
    out: list[Assumption] = []
    for chain in ruleset.base_chains() if ruleset else ():
        if chain.hook in IP_HOOKS or not chain.rules:
            continue
        if chain.table_family not in (*FAMILIES[family], "netdev"):
            continue
        if chain.hook == "ingress" and local_out:
            continue
        device = f" of device {chain.device}" if chain.device else ""
        out.append(Assumption(chain_label(chain), chain.name, 0, chain.line or 0,
                              f"base chain at hook {chain.hook}{device} not evaluated",
                              "let the packet pass"))
    return out


def table_label(family: str, name: str) -> str:
    return f"{family} {name}"


def chain_label(chain: NftChain) -> str:
    return table_label(chain.table_family, chain.table_name)


def label_of(table: NftTable) -> str:
    return table_label(table.family, table.name)
