"""Evaluate a packet through a ruleset the way the kernel's netfilter hooks would.

Paths (netfilter hook priorities: raw -300, mangle -150, nat DNAT -100, filter 0, security 50,
nat SNAT 100):

- from outside:       PREROUTING (raw, mangle, nat) → routing → INPUT (mangle, filter,
                      security, nat) or FORWARD (mangle, filter, security) → POSTROUTING
                      (mangle, nat)
- generated locally:  OUTPUT (raw, mangle, nat, filter, security) → POSTROUTING (mangle, nat)
                      → and, when the destination is local, INPUT (mangle, filter, security)

Routing only needs "is this destination local". A statistic match forks the branch; every
outcome carries its exact probability. What the engine cannot evaluate it records as an
assumption and never silently assumes a match.

Jumps and gotos run on an explicit jump stack per branch, as ipt_do_table's: any depth
iptables-legacy loads is traced (nf_tables refuses more than 16 levels). A chain entered twice
on one path is a loop, which the kernel refuses too. Forks are bounded before they cost time
or memory: MAX_NESTED statistic matches taken on one path, MAX_BRANCHES in all.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import TypeVar

from svctrace.errors import RulesError
from svctrace.model.packet import Packet
from svctrace.model.ruleset import Chain, Match, Rule, Ruleset, Target
from svctrace.model.trace import Assumption, NodeContext, Outcome, Step, Trace
from svctrace.trace.matches import MATCHES
from svctrace.trace.state import BranchState, Hook, Unknown
from svctrace.trace.targets import CONTINUE, RETURN, TARGETS

_Part = TypeVar("_Part", Match, Target)
_Result = TypeVar("_Result")

MAX_BRANCHES = 50_000        # a kube-proxy Service forks once per endpoint: 200x the 250
                             # endpoints per Service of sig-scalability's thresholds.md
MAX_NESTED = 16              # statistic matches taken along one path; kube-proxy takes one
_GRAIN = 2**128

_PRE = (("raw", "PREROUTING"), ("mangle", "PREROUTING"), ("nat", "PREROUTING"))
_INPUT = (("mangle", "INPUT"), ("filter", "INPUT"), ("security", "INPUT"), ("nat", "INPUT"))
_LOCAL_IN = (("mangle", "INPUT"), ("filter", "INPUT"), ("security", "INPUT"))
_FORWARD = (("mangle", "FORWARD"), ("filter", "FORWARD"), ("security", "FORWARD"))
_OUTPUT = (("raw", "OUTPUT"), ("mangle", "OUTPUT"), ("nat", "OUTPUT"), ("filter", "OUTPUT"),
           ("security", "OUTPUT"))
_POST = (("mangle", "POSTROUTING"), ("nat", "POSTROUTING"))


def trace_packet(packet: Packet, ruleset: Ruleset, node: NodeContext) -> Trace:
    """Every outcome of `packet` (the first packet of a new connection) through `ruleset`."""
    if ruleset.family != packet.family and _has_rules(ruleset):
        raise RulesError(f"the rules in {ruleset.source} are IPv{ruleset.family} but the packet "
                         f"is IPv{packet.family}",
                         "give ip6tables-save output for IPv6 packets, iptables-save for IPv4")
    node = _resolve_affinity(ruleset, node)
    engine = _Engine(ruleset)
    start = BranchState(packet, node)
    local_out = node.is_local(packet.src)
    finished = engine.walk(start, local_out)
    outcomes = sorted((_outcome(s, v) for s, v in finished), key=_order)
    return Trace(packet, node, tuple(outcomes))


def _has_rules(ruleset: Ruleset) -> bool:
    return any(len(c) for t in ruleset.tables.values() for c in t.chains.values())


def _order(o: Outcome) -> tuple[int, tuple[int, ...]]:
    # rule order: the branch that took an earlier rule first (kube-proxy's endpoint order)
    return (0 if o.destination else 1, tuple(s.line or 0 for s in o.path))


def _outcome(state: BranchState, verdict: str) -> Outcome:
    return Outcome(
        probability=_round(state.probability), verdict=verdict, packet=state.packet,
        destination=state.dnat, masquerade=state.snat, snat_to=state.snat_to,
        hook_path=tuple(state.hooks), path=tuple(state.path),
        assumptions=tuple(state.assumptions), reject_with=state.reject_with)


def _round(p: Fraction) -> float:
    # Shares are exact fractions of 2**31 (xt_statistic); 1e-9 is below any real difference.
    return round(float(p), 9)


class _Engine:
    def __init__(self, ruleset: Ruleset) -> None:
        self.ruleset = ruleset
        self.branches = 0

    def walk(self, start: BranchState, local_out: bool) -> list[tuple[BranchState, str]]:
        """Run every hook on the packet's path; returns (branch, final verdict) pairs."""
        if local_out:
            stages = [(_OUTPUT, "OUTPUT"), (_POST, "POSTROUTING")]
        else:
            stages = [(_PRE, "PREROUTING")]
        live = [start]
        done: list[tuple[BranchState, str]] = []
        for tables, hook in stages:
            live = self.run_hook(live, tables, hook, local_out, done)
        if local_out:
            self.deliver_local(live, done)
        else:
            self.route(live, done)
        return done

    def route(self, live: list[BranchState], done: list[tuple[BranchState, str]]) -> None:
        to_input = [s for s in live if s.node.is_local(s.packet.dst)]
        forward = [s for s in live if not s.node.is_local(s.packet.dst)]
        for s in self.run_hook(to_input, _INPUT, "INPUT", False, done):
            done.append((s, "ACCEPT"))
        forward = self.run_hook(forward, _FORWARD, "FORWARD", False, done)
        for s in self.run_hook(forward, _POST, "POSTROUTING", False, done):
            done.append((s, "ACCEPT"))

    def deliver_local(self, live: list[BranchState], done: list[tuple[BranchState, str]]) -> None:
        for s in live:
            if s.node.is_local(s.packet.dst):
                for s2 in self.run_hook([s], _LOCAL_IN, "INPUT", True, done):
                    done.append((s2, "ACCEPT"))
            else:
                done.append((s, "ACCEPT"))

    def run_hook(self, live: list[BranchState], tables: tuple[tuple[str, str], ...], hook: str,
                 local_out: bool, done: list[tuple[BranchState, str]]) -> list[BranchState]:
        """Run one hook's tables in priority order; DROP/REJECT end a branch."""
        for state in live:
            state.hooks.append(hook)
        for table, chain_name in tables:
            chain = self.ruleset.chain(table, chain_name)
            if chain is None or len(chain) == 0 and chain.policy == "ACCEPT":
                continue
            nxt: list[BranchState] = []
            for state in live:
                if table == "nat" and state.notrack:    # untracked packets bypass nat
                    nxt.append(state)
                    continue
                state.hook = Hook(hook, table, local_out)
                for s, verdict in self.run_builtin(state, chain):
                    if verdict == "ACCEPT":
                        nxt.append(s)
                    else:
                        done.append((s, verdict))
            live = nxt
        return live

    def run_builtin(self, state: BranchState, chain: Chain) -> list[tuple[BranchState, str]]:
        out = []
        for s, verdict in self.run_chain(state, chain):
            if verdict is None:                       # fell off the end: the policy decides
                verdict = chain.policy or "ACCEPT"
                if len(chain):
                    s.path.append(Step(chain.table, chain.name, None, f"policy {verdict}",
                                       chain.line))
            out.append((s, verdict))
        return out

    def run_chain(self, state: BranchState,
                  chain: Chain) -> list[tuple[BranchState, str | None]]:
        """All (branch, verdict) results of a built-in chain; verdict None = its policy decides.

        An iterative walk over each branch's own call stack (BranchState.calls), as the
        kernel's ipt_do_table keeps a jump stack: any depth the kernel loads is traced, and
        Python's recursion limit plays no part."""
        state.calls, state.on_stack = [], set()
        state.enter(chain, False)
        out: list[tuple[BranchState, str | None]] = []
        work = [state]
        while work:
            st = work.pop()
            current, idx, goto = st.calls[-1]
            rules = current.rules
            if idx >= len(rules):
                self.leave(st, work, out)
                continue
            st.calls[-1] = (current, idx + 1, goto)      # where a return comes back to
            rule = rules[idx]
            if _destination_differs(rule.text, st.packet):
                work.append(st)
                continue
            for s, result in reversed(self.run_rule(st, rule)):
                if result == CONTINUE:
                    work.append(s)
                elif result == RETURN:
                    self.leave(s, work, out)
                else:                                    # a verdict: the stack is done with
                    s.calls, s.on_stack = [], set()
                    out.append((s, result))
        return out

    @staticmethod
    def leave(state: BranchState, work: list[BranchState],
              out: list[tuple[BranchState, str | None]]) -> None:
        if state.leave():
            work.append(state)
        else:
            out.append((state, None))

    def run_rule(self, state: BranchState, rule: Rule) -> list[tuple[BranchState, str]]:
        """(branch, CONTINUE | RETURN | verdict) for each way this rule can go; a jump to a
        chain pushes it on the branch's call stack and continues there."""
        matched_states = self.evaluate_matches(state, rule)
        results: list[tuple[BranchState, str]] = []
        for s, matched, step_prob in matched_states:
            if not matched:
                results.append((s, CONTINUE))
                continue
            s.path.append(Step(rule.table, rule.chain, rule.number, rule.text, rule.line,
                               step_prob))
            target = rule.target
            if target is None:
                results.append((s, CONTINUE))   # a rule without a target only counts
            else:
                results.append((s, self.apply_target(s, rule, target)))
        return results

    def evaluate_matches(self, state: BranchState,
                         rule: Rule) -> list[tuple[BranchState, bool, float | None]]:
        """Evaluate the rule's matches in order; a statistic match forks the branch."""
        prob: Fraction | None = None
        for match in rule.matches:
            fn = MATCHES.get(match.module)
            result = _evaluate(fn, state, match, rule) if fn else \
                Unknown(f'match "{match.module}"')
            if isinstance(result, Unknown):
                self.assume(state, rule, f"not evaluated: {result.what}", "did not match")
                return [(state, False, None)]
            if isinstance(result, Fraction):
                if not 0 <= result <= 1:
                    raise RulesError(f"{rule.location}: probability {float(result):g} is not "
                                     "between 0 and 1 (iptables refuses it)")
                prob = result if prob is None else prob * result
            elif not result:
                return [(state, False, None)]
        if prob is None:
            return [(state, True, None)]
        self.count_branch(state, rule)
        other = state.fork()
        other.probability = _scaled(other.probability, 1 - prob)
        state.probability = _scaled(state.probability, prob)
        state.nested += 1
        return [(state, True, float(prob)), (other, False, None)]

    def apply_target(self, state: BranchState, rule: Rule, target: Target) -> str:
        chain = self.ruleset.chain(rule.table, target.name)
        if chain is not None:
            if chain.name in state.on_stack:
                raise _loop_error(state, rule, chain)
            state.enter(chain, target.goto)
            return CONTINUE                     # at the first rule of `chain`
        fn = TARGETS.get(target.name)
        if fn is None:
            self.assume(state, rule, f'not evaluated: target "{target.name}" (not a chain of '
                        f'table "{rule.table}")', "did not terminate the chain")
            return CONTINUE
        result = _evaluate(fn, state, target, rule)
        if isinstance(result, Unknown):
            self.assume(state, rule, f"{result.what}", "did not terminate the chain")
            return CONTINUE
        return result

    def assume(self, state: BranchState, rule: Rule, what: str, assumed: str) -> None:
        state.assumptions.append(Assumption(rule.table, rule.chain, rule.number, rule.line,
                                            what, assumed))

    def count_branch(self, state: BranchState, rule: Rule) -> None:
        """Stop a trace that forks without end, before it costs time and memory: statistic
        matches taken one inside another (each doubles the branches), or too many in all."""
        self.branches += 1
        if state.nested >= MAX_NESTED:
            raise RulesError(f"{rule.location}: statistic matches nested more than {MAX_NESTED} "
                             "deep on one path (each one taken forks the trace again): the "
                             "trace was stopped",
                             "kube-proxy nests none; trace a narrower packet, or check where "
                             "these rules came from")
        if self.branches > MAX_BRANCHES:
            raise RulesError(f"{rule.location}: more than {MAX_BRANCHES} random branches: the "
                             "trace was stopped",
                             "the ruleset forks at every rule; trace a narrower packet")


def _evaluate(fn: Callable[[BranchState, _Part], _Result], state: BranchState, part: _Part,
              rule: Rule) -> _Result:
    """Run one match or target function. A value in the rule that it cannot read (an address
    `10.0.0.1/33`, a mark `0xZZ`, a port `abc`) becomes an error located at the rule, never
    an internal error: the kernel would have refused the line."""
    try:
        return fn(state, part)
    except (ValueError, OverflowError) as err:
        if isinstance(part, Target):
            what = f'target "{part.name}"'
        else:
            what = f'match "{part.module}"' if part.module else "rule"
        raise RulesError(f"{rule.location}: {what}: invalid value: {err}",
                         "iptables-restore refuses this rule; check where the rules came "
                         "from") from None


def _scaled(probability: Fraction, share: Fraction) -> Fraction:
    """probability × share, to 2^-128 at most. Each statistic rule passed multiplies in a
    2^-31 denominator (xt_statistic's threshold): the branch past the 20,000th rule of a
    cascade would carry a 620,000-bit fraction, each product slower and larger than the last.
    Outcomes are shown to 1e-9; 2^-128 is exact for them."""
    num = probability.numerator * share.numerator
    den = probability.denominator * share.denominator
    if den > _GRAIN:
        num, den = (num * _GRAIN + den // 2) // den, _GRAIN      # to the nearest 2^-128
    return Fraction(num, den)


def _loop_error(state: BranchState, rule: Rule, chain: Chain) -> RulesError:
    names = [c.name for c, _, _ in state.calls]
    start = names.index(chain.name)
    loop = names[start:] + [chain.name]
    shown = loop if len(loop) <= 8 else [*loop[:3], f"… {len(loop) - 6} more …", *loop[-3:]]
    lead = names[:start] if start <= 2 else [names[0], "…"]
    return RulesError(f"{rule.location}: jump loop in table {chain.table}: "
                      f"{' → '.join(lead + shown)}",
                      "the kernel refuses such a ruleset; check where it came from")


def _destination_differs(text: str, packet: Packet) -> bool:
    """An exact shortcut past rules for another host: iptables-save prints `-d ADDR/32` (or
    /128) among the first options, before any quoted string, so when that token names another
    address the rule cannot match. Anything less plain goes through the full evaluation."""
    i = text.find(" -d ")
    if i < 0 or text[i - 1] == "!" or '"' in text[:i]:
        return False
    end = text.find(" ", i + 4)
    value = text[i + 4:end] if end > 0 else text[i + 4:]
    host, _, length = value.partition("/")
    if length != ("32" if packet.family == 4 else "128"):
        return False
    return host != str(packet.dst)


def _resolve_affinity(ruleset: Ruleset, node: NodeContext) -> NodeContext:
    """--affinity-hit may name an endpoint (ip:port): find the recent lists that DNAT to it."""
    wanted = {h for h in node.affinity_hit if ":" in h}
    if not wanted:
        return node
    names = set(node.affinity_hit) - wanted
    nat = ruleset.tables.get("nat")
    for chain in nat.chains.values() if nat else ():
        for _, text, _ in chain.raw:
            if "--to-destination" in text and any(text.endswith(f" {w}") for w in wanted):
                names.add(chain.name)
    from dataclasses import replace
    return replace(node, affinity_hit=frozenset(names))
