"""Which program wrote a chain, from its name: kube-proxy shares a node's tables with container
runtimes, CNI plugins and other agents, and a trace names whose rule decided a drop or a
masquerade. Prefixes as each agent writes them (longest first where they overlap)."""

from __future__ import annotations

from svctrace.model.trace import Outcome, Step

AGENT_PREFIXES: tuple[tuple[str, str], ...] = (
    ("KUBE-ROUTER-", "kube-router"),
    ("KUBE-FIREWALL", "kubelet/kube-proxy"),
    ("KUBE-KUBELET-", "kubelet"),
    ("KUBE-", "kube-proxy"),
    ("DOCKER", "Docker"),
    ("FLANNEL", "flannel"),
    ("cali-", "Calico"),
    ("WEAVE", "Weave Net"),
    ("CILIUM_", "Cilium"),
    ("OLD_CILIUM_", "Cilium"),
    ("LIBVIRT_", "libvirt"),
    ("IP-MASQ", "ip-masq-agent"),
    ("CNI-", "a CNI plugin (portmap/bridge)"),
    ("ANTREA-", "Antrea"),
    ("OVN-KUBE-", "OVN-Kubernetes"),
)


def agent_of(chain: str) -> str | None:
    """The program that owns `chain`, or None for a built-in or unknown chain."""
    return next((agent for prefix, agent in AGENT_PREFIXES if chain.startswith(prefix)), None)


def _decider(steps: tuple[Step, ...], targets: tuple[str, ...]) -> Step | None:
    for step in reversed(steps):
        if step.rule is not None and any(f" -j {t}" in step.text for t in targets):
            return step
    return None


def deciding_agents(outcome: Outcome) -> dict[str, str | None]:
    """{"verdict": who dropped/rejected it, "masquerade": who masqueraded it}, each the agent
    owning the chain of the deciding rule (None: no such rule, or a built-in/unknown chain)."""
    out: dict[str, str | None] = {"verdict": None, "masquerade": None}
    if outcome.verdict in ("DROP", "REJECT") and outcome.path:
        last = outcome.path[-1]
        out["verdict"] = agent_of(last.chain) if last.rule is not None else None
    if outcome.masquerade:
        step = _decider(outcome.path, ("MASQUERADE", "SNAT"))
        out["masquerade"] = agent_of(step.chain) if step is not None else None
    return out
