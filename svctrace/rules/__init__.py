"""Ruleset text → model: the iptables-save parser, rule sources, kube-proxy's chain layout."""
