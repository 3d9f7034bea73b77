"""Evaluate a packet through an nftables ruleset the way the kernel's netfilter hooks would.

A generic evaluator of the nft rule language, not a recogniser of kube-proxy's layouts
(kube-proxy-semantics.md §2.8). Every base chain of every table of the packet's family
(`ip`/`ip6`, and `inet`) runs at its hook in priority order; when the node also holds
iptables rules (a mode switch that left them behind), their built-in chains run at the
classic priorities among them (raw -300, mangle -150, nat -100 / 100, filter 0, security 50).

- `accept` (explicit, by policy, or by a NAT statement) ends only the current base chain:
  the packet meets every later base chain at the hook. `drop` and `reject` end it.
- nat chains run for a connection's first packet only; the first chain at a hook that sets
  up a NAT wins and later nat chains at that hook are skipped (nf_nat_inet_fn). Routing
  uses the rewritten destination. A locally generated packet to a local address comes back
  in through lo: prerouting and input run again, nat does not.
- `numgen random|inc mod N` forks the branch N ways with probability 1/N each (Fractions).
- What cannot be evaluated is recorded as an Assumption and the rule taken as not matching.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from svctrace.errors import RulesError
from svctrace.model.nftables import NftChain, NftRule, NftRuleset, NftSet, NftTable
from svctrace.model.packet import Packet
from svctrace.model.ruleset import Chain, Ruleset
from svctrace.model.trace import Assumption, NodeContext, Step, Trace
from svctrace.trace.engine import MAX_BRANCHES, _Engine, _outcome
from svctrace.trace.nft_expr import (
    Context,
    Fork,
    SetIndex,
    anonymous_items,
    kind_of_type,
    lookup_form,
)
from svctrace.trace.nft_stmt import STATEMENTS, Verdict, describe
from svctrace.trace.state import BranchState, Hook, Unknown

MAX_DEPTH = 16                    # NFT_JUMP_STACK_SIZE: the kernel refuses deeper rulesets
CONTINUE, RETURN = "CONTINUE", "RETURN"
_FAMILIES = {4: ("ip", "inet"), 6: ("ip6", "inet")}
_IPT_CHAINS = {   # iptables-nft / -legacy built-in chains: (hook, priority, nat)
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
_DNAT_HOOKS = ("prerouting", "output")
_IP_HOOKS = ("prerouting", "input", "forward", "output", "postrouting")
_EXACT_TYPES = {"ipv4_addr", "ipv6_addr", "inet_proto", "inet_service"}

Done = list[tuple[BranchState, str]]


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
        if chain.hook and chain.table_family in _FAMILIES[family]:
            found.append(HookChain(chain.hook, chain.priority or 0, chain.type == "nat",
                                   nft=chain, order=-index))
    if iptables is not None and iptables.family == family:
        for (table, name), (hook, prio) in _IPT_CHAINS.items():
            ipt = iptables.chain(table, name)
            if ipt is not None:
                found.append(HookChain(hook, prio, table == "nat", iptables=ipt, order=1))
    by_hook: dict[str, list[HookChain]] = {}
    for hc in sorted(found, key=lambda h: (h.priority, h.order)):
        by_hook.setdefault(hc.hook, []).append(hc)
    return by_hook


def trace_nft(packet: Packet, ruleset: NftRuleset | None, node: NodeContext,
              iptables: Ruleset | None = None) -> Trace:
    """Every outcome of `packet` (the first packet of a new connection) through the rules."""
    if ruleset is not None:
        node = _resolve_affinity(ruleset, node)
    engine = NftEngine(ruleset, iptables, packet.family)
    local_out = node.is_local(packet.src)
    start = BranchState(packet, node)
    start.assumptions.extend(unevaluated_chains(ruleset, packet.family, local_out))
    finished = engine.walk(start, local_out)
    outcomes = sorted((_outcome(s, v) for s, v in finished), key=lambda o: o.destination is None)
    return Trace(packet, node, tuple(outcomes))


def unevaluated_chains(ruleset: NftRuleset | None, family: int, local_out: bool
                       ) -> list[Assumption]:
    """Base chains with rules that the packet may meet but the engine does not run: ingress
    and egress hooks (per device, before prerouting / after postrouting)."""
    out: list[Assumption] = []
    for chain in ruleset.base_chains() if ruleset else ():
        if chain.hook in _IP_HOOKS or not chain.rules:
            continue
        if chain.table_family not in (*_FAMILIES[family], "netdev"):
            continue
        if chain.hook == "ingress" and local_out:
            continue
        device = f" of device {chain.device}" if chain.device else ""
        out.append(Assumption(_label(chain), chain.name, 0, chain.line or 0,
                              f"base chain at hook {chain.hook}{device} not evaluated",
                              "let the packet pass"))
    return out


def table_label(family: str, name: str) -> str:
    return f"{family} {name}"


class NftEngine:
    def __init__(self, ruleset: NftRuleset | None, iptables: Ruleset | None,
                 family: int) -> None:
        self.ruleset = ruleset
        self.chains = hook_chains(ruleset, iptables, family)
        self.ipt = _Engine(iptables) if iptables is not None else None
        self.branches = 0
        self.indexes: dict[tuple[int, Any], SetIndex] = {}
        self.forking: dict[int, bool] = {}

    # -- hooks and routing --------------------------------------------------------------------
    def walk(self, start: BranchState, local_out: bool) -> Done:
        done: Done = []
        if local_out:
            live = self.run_hook([start], "output", True, False, done)
            live = self.run_hook(live, "postrouting", True, False, done)
            back = [s for s in live if s.node.is_local(s.packet.dst)]
            done.extend((s, "ACCEPT") for s in live if not s.node.is_local(s.packet.dst))
            back = self.run_hook(back, "prerouting", False, True, done)
            done.extend((s, "ACCEPT") for s in self.run_hook(back, "input", False, True, done))
            return done
        live = self.run_hook([start], "prerouting", False, False, done)
        to_input = [s for s in live if s.node.is_local(s.packet.dst)]
        forward = [s for s in live if not s.node.is_local(s.packet.dst)]
        done.extend((s, "ACCEPT") for s in self.run_hook(to_input, "input", False, False, done))
        forward = self.run_hook(forward, "forward", False, False, done)
        done.extend((s, "ACCEPT") for s in self.run_hook(forward, "postrouting", False, False,
                                                          done))
        return done

    def run_hook(self, live: list[BranchState], hook: str, local_out: bool, reentry: bool,
                 done: Done) -> list[BranchState]:
        """Run every chain at `hook` in priority order; DROP/REJECT end a branch."""
        for state in live:
            state.hooks.append(hook.upper())
        for hc in self.chains.get(hook, ()):
            nxt: list[BranchState] = []
            for state in live:
                if hc.nat and _nat_settled(state, hook, reentry):
                    nxt.append(state)
                    continue
                for s, verdict in self.run_base(state, hc, local_out, reentry):
                    (nxt.append(s) if verdict == "ACCEPT" else done.append((s, verdict)))
            live = nxt
        return live

    def run_base(self, state: BranchState, hc: HookChain, local_out: bool,
                 reentry: bool) -> list[tuple[BranchState, str]]:
        if hc.iptables is not None:
            assert self.ipt is not None
            state.hook = Hook(hc.hook.upper(), hc.iptables.table, local_out)
            return self.ipt.run_builtin(state, hc.iptables)
        assert hc.nft is not None
        chain = hc.nft
        ctx = Context(state, hc.hook, local_out, reentry)
        out = []
        for s, verdict in self.run_chain(ctx, chain, (chain.name,)):
            if verdict is None:          # fell off the end (or returned): the policy decides
                verdict = (chain.policy or "accept").upper()
                if chain.rules:
                    s.path.append(Step(_label(chain), chain.name, None, f"policy {verdict}",
                                       chain.line))
            out.append((s, verdict))
        return out

    # -- chains and rules ---------------------------------------------------------------------
    def run_chain(self, ctx: Context, chain: NftChain, stack: tuple[str, ...]
                  ) -> list[tuple[BranchState, str | None]]:
        """All (branch, verdict) results of one chain; verdict None = back to the caller."""
        rules = chain.rules
        out: list[tuple[BranchState, str | None]] = []
        work: list[tuple[BranchState, int]] = [(ctx.state, 0)]
        while work:
            st, idx = work.pop()
            if idx >= len(rules):
                out.append((st, None))
                continue
            results = self.run_rule(replace(ctx, state=st, bindings={}), chain, rules[idx],
                                    stack)
            out.extend((s, None if r == RETURN else r) for s, r in results if r != CONTINUE)
            work.extend((s, idx + 1) for s, r in reversed(results) if r == CONTINUE)
        return out

    def run_rule(self, ctx: Context, chain: NftChain, rule: NftRule,
                 stack: tuple[str, ...]) -> list[tuple[BranchState, str]]:
        """(branch, CONTINUE | RETURN | verdict) for each way this rule can go."""
        before = ctx.state.fork() if self._may_fork(rule) else None
        try:
            result = self.evaluate(ctx, chain, rule)
        except Fork as fork:
            assert before is not None
            return self.fork(ctx, before, chain, rule, stack, fork)
        return self.apply(ctx, chain, rule, result, stack, None)

    def fork(self, ctx: Context, before: BranchState, chain: NftChain, rule: NftRule,
             stack: tuple[str, ...], fork: Fork) -> list[tuple[BranchState, str]]:
        results: list[tuple[BranchState, str]] = []
        share = Fraction(1, fork.values)
        for i in range(fork.values):
            self.count_branch()
            base = before.fork()                 # untouched by a partial evaluation
            base.probability *= share
            sub = replace(ctx, state=base.fork(), bindings={**ctx.bindings, id(fork.expr): i})
            try:
                result = self.evaluate(sub, chain, rule)
            except Fork as inner:                # a second numgen in the same rule
                results.extend(self.fork(sub, base, chain, rule, stack, inner))
                continue
            results.extend(self.apply(sub, chain, rule, result, stack, float(share)))
        return results

    def evaluate(self, ctx: Context, chain: NftChain, rule: NftRule
                 ) -> bool | Unknown | Verdict:
        look = _Lookups(self, ctx, _table(self.ruleset, chain))
        for stmt in rule.statements:
            name = next(iter(stmt), None) if len(stmt) == 1 else None
            fn = STATEMENTS.get(name) if name is not None else None
            if fn is None or name is None:
                return Unknown(f"{describe(stmt)} not evaluated")
            result = fn(look, ctx, stmt[name])
            if result is not True:
                return result
        return True

    def apply(self, ctx: Context, chain: NftChain, rule: NftRule,
              result: bool | Unknown | Verdict, stack: tuple[str, ...],
              probability: float | None) -> list[tuple[BranchState, str]]:
        state = ctx.state
        if isinstance(result, Unknown):
            state.assumptions.append(Assumption(_label(chain), chain.name, rule.number,
                                                rule.line or 0, result.what, "did not match"))
            return [(state, CONTINUE)]
        if result is False:
            return [(state, CONTINUE)]
        state.path.append(Step(_label(chain), chain.name, rule.number, rule.text, rule.line,
                               probability))
        if result is True:
            return [(state, CONTINUE)]
        assert isinstance(result, tuple)
        return self.verdict(ctx, chain, result, stack)

    def verdict(self, ctx: Context, chain: NftChain, verdict: Verdict,
                stack: tuple[str, ...]) -> list[tuple[BranchState, str]]:
        name, target = verdict
        if name in ("accept", "drop", "reject"):
            return [(ctx.state, name.upper())]
        if name == "continue":
            return [(ctx.state, CONTINUE)]
        if name == "return":
            return [(ctx.state, RETURN)]
        table = _table(self.ruleset, chain)
        sub = table.chain(target or "") if table else None
        if sub is None:
            raise RulesError(f"{_label(chain)}: chain {chain.name} jumps to {target!r}, "
                             "which does not exist", "the kernel refuses such a ruleset")
        if sub.name in stack or len(stack) > MAX_DEPTH:
            path = " → ".join((*stack, sub.name))
            what = "jump loop" if sub.name in stack else f"jumps nested deeper than {MAX_DEPTH}"
            raise RulesError(f"{what} in table {_label(chain)}: {path}",
                             "the kernel refuses such a ruleset; check where it came from")
        out: list[tuple[BranchState, str]] = []
        for s, v in self.run_chain(replace(ctx, bindings={}), sub, (*stack, sub.name)):
            out.append((s, v if v is not None else (RETURN if name == "goto" else CONTINUE)))
        return out

    # -- sets ---------------------------------------------------------------------------------
    def set_index(self, nft_set: NftSet, kind: Any) -> SetIndex:
        key = (id(nft_set), None)
        index = self.indexes.get(key)
        if index is None:
            items = [(e.key, e.value) for e in nft_set.elements]
            index = self.indexes[key] = SetIndex(items, kind_of_type(nft_set.type))
        return index

    def anonymous_index(self, body: Any, kind: Any) -> SetIndex:
        key = (id(body), kind)
        index = self.indexes.get(key)
        if index is None:
            index = self.indexes[key] = SetIndex(anonymous_items(body), kind)
        return index

    def _may_fork(self, rule: NftRule) -> bool:
        found = self.forking.get(id(rule))
        if found is None:
            found = self.forking[id(rule)] = _has_numgen(rule.statements)
        return found

    def count_branch(self) -> None:
        self.branches += 1
        if self.branches > MAX_BRANCHES:
            raise RulesError(f"more than {MAX_BRANCHES} random branches: the trace was stopped",
                             "the ruleset forks at every rule; trace a narrower packet")


class _Lookups:
    """The sets of one rule's table, as the statements see them (nft_stmt.Lookups)."""

    def __init__(self, engine: NftEngine, ctx: Context, table: NftTable | None) -> None:
        self.engine, self.ctx, self.table = engine, ctx, table

    def _set(self, ref: Any) -> NftSet | None:
        return self.table.set(ref) if isinstance(ref, str) and self.table else None

    def find(self, ref: Any, value: Any, kind: Any) -> tuple[bool, Any] | Unknown:
        if not isinstance(ref, str):
            return self.engine.anonymous_index(ref, kind).lookup(value)
        nft_set = self._set(ref)
        if nft_set is None:
            return Unknown(f"set {ref} (not in the table)")
        key = element_key(nft_set, value)
        if key is not None:            # read only the element with this key (a big map)
            element = nft_set.lookup(key)
            return element is not None, element.value if element is not None else None
        return self.engine.set_index(nft_set, kind).lookup(value)

    def dynamic(self, ref: Any) -> bool:
        nft_set = self._set(ref)
        return nft_set is not None and is_dynamic(nft_set)

    def member(self, ref: Any, value: Any) -> bool:
        name = ref.lstrip("@")
        if name in self.ctx.state.node.affinity_hit:
            return True
        return self._key(name, value) in self.ctx.state.recent

    def remember(self, ref: str, value: Any, add: bool) -> None:
        key = self._key(ref.lstrip("@"), value)
        (self.ctx.state.recent.add if add else self.ctx.state.recent.discard)(key)

    def _key(self, name: str, value: Any) -> str:
        where = _label_of(self.table) if self.table else "?"
        return f"{where}/{name}|{value!r}"


def element_key(nft_set: NftSet, value: Any) -> Any:
    """`value` as the key of an exact-key set's element (addresses as text, protocols by name,
    ports as numbers; a list for a concatenation), or None when only a scan can tell: an
    interval set, or a key type compared otherwise (flags, wildcards)."""
    if nft_set.interval or not set(nft_set.type) <= _EXACT_TYPES:
        return None
    key = lookup_form(value)
    if isinstance(key, tuple):
        return list(key) if len(key) == len(nft_set.type) > 1 else None
    return key if len(nft_set.type) == 1 else None


def is_dynamic(nft_set: NftSet) -> bool:
    """A set the kernel fills as packets pass (affinity): empty for a new client's trace."""
    return nft_set.dynamic or bool(nft_set.flags & {"dynamic", "timeout"}) or \
        nft_set.timeout is not None


def _has_numgen(obj: Any) -> bool:
    if isinstance(obj, dict):
        return "numgen" in obj or any(_has_numgen(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_has_numgen(v) for v in obj)
    return False


def _nat_settled(state: BranchState, hook: str, reentry: bool) -> bool:
    """nat chains do not run: the connection is not new at this point (lo re-entry), it is
    untracked, or an earlier nat chain at this hook already set up the NAT."""
    if reentry or state.notrack:
        return True
    return state.dnat is not None if hook in _DNAT_HOOKS else state.snat


def _table(ruleset: NftRuleset | None, chain: NftChain) -> NftTable | None:
    return ruleset.table(chain.table_family, chain.table_name) if ruleset else None


def _label(chain: NftChain) -> str:
    return table_label(chain.table_family, chain.table_name)


def _label_of(table: NftTable) -> str:
    return table_label(table.family, table.name)


def _resolve_affinity(ruleset: NftRuleset, node: NodeContext) -> NodeContext:
    """--affinity-hit may name an endpoint (ip:port): the dynamic sets updated in the chains
    that DNAT to it. Set names are kept as given."""
    wanted = {h for h in node.affinity_hit if ":" in h and not h.startswith("@")}
    if not wanted:
        return node
    names = {h.lstrip("@") for h in node.affinity_hit - wanted}
    for chain in ruleset.chains():
        updated, targets = _chain_affinity(chain)
        if targets & wanted:
            names |= updated
    return replace(node, affinity_hit=frozenset(names))


def _chain_affinity(chain: NftChain) -> tuple[set[str], set[str]]:
    updated: set[str] = set()
    targets: set[str] = set()
    for rule in chain.rules:
        for stmt in rule.statements:
            body: Any = next(iter(stmt.values()), None)
            if "set" in stmt and isinstance(body, dict) and isinstance(body.get("set"), str):
                updated.add(body["set"].lstrip("@"))
            if "dnat" in stmt and isinstance(body, dict) and isinstance(body.get("addr"), str):
                addr, port = body["addr"], body.get("port")
                targets.add(f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}")
    return updated, targets

