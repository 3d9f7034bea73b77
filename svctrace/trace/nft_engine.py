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

from dataclasses import replace
from fractions import Fraction
from typing import Any

from svctrace.errors import RulesError
from svctrace.model.nftables import NftChain, NftRule, NftRuleset, NftTable
from svctrace.model.packet import Packet
from svctrace.model.ruleset import Ruleset
from svctrace.model.trace import Assumption, NodeContext, Step, Trace
from svctrace.trace.engine import MAX_BRANCHES, _Engine, _outcome
from svctrace.trace.nft_expr import Context, Fork
from svctrace.trace.nft_hooks import HookChain, chain_label, hook_chains, unevaluated_chains
from svctrace.trace.nft_sets import SetCache, TableSets, resolve_affinity
from svctrace.trace.nft_stmt import STATEMENTS, Verdict, describe
from svctrace.trace.state import BranchState, Hook, Unknown

MAX_DEPTH = 16                    # NFT_JUMP_STACK_SIZE: the kernel refuses deeper rulesets
CONTINUE, RETURN = "CONTINUE", "RETURN"
_DNAT_HOOKS = ("prerouting", "output")
Done = list[tuple[BranchState, str]]


def trace_nft(packet: Packet, ruleset: NftRuleset | None, node: NodeContext,
              iptables: Ruleset | None = None) -> Trace:
    """Every outcome of `packet` (the first packet of a new connection) through the rules."""
    if ruleset is not None:
        node = resolve_affinity(ruleset, node)
    engine = NftEngine(ruleset, iptables, packet.family)
    local_out = node.is_local(packet.src)
    start = BranchState(packet, node)
    start.assumptions.extend(unevaluated_chains(ruleset, packet.family, local_out))
    finished = engine.walk(start, local_out)
    outcomes = sorted((_outcome(s, v) for s, v in finished), key=lambda o: o.destination is None)
    return Trace(packet, node, tuple(outcomes))


class NftEngine:
    def __init__(self, ruleset: NftRuleset | None, iptables: Ruleset | None,
                 family: int) -> None:
        self.ruleset = ruleset
        self.chains = hook_chains(ruleset, iptables, family)
        self.ipt = _Engine(iptables) if iptables is not None else None
        self.branches = 0
        self.sets = SetCache()
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
                    s.path.append(Step(chain_label(chain), chain.name, None, f"policy {verdict}",
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
        look = TableSets(self.sets, ctx, _table(self.ruleset, chain))
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
            state.assumptions.append(Assumption(chain_label(chain), chain.name, rule.number,
                                                rule.line or 0, result.what, "did not match"))
            return [(state, CONTINUE)]
        if result is False:
            return [(state, CONTINUE)]
        state.path.append(Step(chain_label(chain), chain.name, rule.number, rule.text, rule.line,
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
            raise RulesError(f"{chain_label(chain)}: chain {chain.name} jumps to {target!r}, "
                             "which does not exist", "the kernel refuses such a ruleset")
        if sub.name in stack or len(stack) > MAX_DEPTH:
            path = " → ".join((*stack, sub.name))
            what = "jump loop" if sub.name in stack else f"jumps nested deeper than {MAX_DEPTH}"
            raise RulesError(f"{what} in table {chain_label(chain)}: {path}",
                             "the kernel refuses such a ruleset; check where it came from")
        out: list[tuple[BranchState, str]] = []
        for s, v in self.run_chain(replace(ctx, bindings={}), sub, (*stack, sub.name)):
            out.append((s, v if v is not None else (RETURN if name == "goto" else CONTINUE)))
        return out

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


