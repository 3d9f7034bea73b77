"""Kubeconfig files as data: which files, their YAML bounds, contexts, and a user's `exec`
credential stanza (run by credentials.py; live.py hands the result to the client)."""

from __future__ import annotations

import os
from typing import Any

from svctrace.cluster.credentials import ExecPlugin, exec_plugin
from svctrace.errors import ClusterError, UsageError

MAX_KUBECONFIG = 16 << 20


def kubeconfig_paths(kubeconfig: str | None) -> list[str]:
    """The kubeconfig files kubectl would read: --kubeconfig, else KUBECONFIG (several files
    separated by ':'), else ~/.kube/config."""
    raw = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    return [os.path.expanduser(p) for p in raw.split(os.pathsep) if p]


def check_kubeconfig_file(path: str) -> None:
    """Refuse a kubeconfig the client would choke on: too large, nested too deep, or an alias
    bomb (UsageError, exit 2). What cannot be read is left to the client's own error."""
    from svctrace.cluster.yamlsafe import YamlRefused, check_yaml_bounds
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(MAX_KUBECONFIG + 1)
    except OSError:
        return
    if len(text) > MAX_KUBECONFIG:
        raise UsageError(f"kubeconfig {path} is larger than {MAX_KUBECONFIG >> 20} MiB; refused")
    try:
        check_yaml_bounds(text)
    except YamlRefused as err:
        raise UsageError(f"kubeconfig {err.located(path)}; refused") from None
    except Exception:  # noqa: BLE001 - yaml.YAMLError: the client says it, with its words
        return


def context_names(merged: Any) -> list[str]:
    """The context names of a merged kubeconfig."""
    value = merged.value if hasattr(merged, "value") else merged
    contexts = [getattr(c, "value", c) for c in value.get("contexts") or []]
    return sorted(str(c.get("name")) for c in contexts if isinstance(c, dict))


def context_name(merged: Any, context: str | None) -> str:
    """The context to use: `context`, else the current-context; ClusterError when unknown."""
    value = merged.value if hasattr(merged, "value") else merged
    names = context_names(merged)
    name = context or value.get("current-context")
    if not name:
        raise ClusterError("the kubeconfig has no current-context",
                           f"choose one with --context ({', '.join(names) or 'none defined'})")
    if name not in names:
        raise ClusterError(f'context "{name}" not found in the kubeconfig',
                           f"contexts: {', '.join(names) or 'none defined'}")
    return name


def _named(entries: Any, name: Any) -> dict[str, Any] | None:
    """The entry called `name` of a kubeconfig list (contexts, clusters, users)."""
    for entry in entries or []:
        entry = getattr(entry, "value", entry)
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry
    return None


def exec_stanza(config: Any, context: str) -> tuple[int, ExecPlugin, dict[str, Any], str] | None:
    """(index in `users`, the plugin, the user entry, its file) when the user of `context`
    gets credentials from an exec plugin; None otherwise."""
    ctx = (_named(config.get("contexts"), context) or {}).get("context") or {}
    users = config.get("users") or []
    index = next((i for i, u in enumerate(users)
                  if getattr(u, "value", u).get("name") == ctx.get("user")), None)
    if index is None:
        return None
    entry = getattr(users[index], "value", users[index])
    user = entry.get("user")
    if not isinstance(user, dict) or "exec" not in user:
        return None
    path = getattr(users[index], "path", None) or ""
    cluster = (_named(config.get("clusters"), ctx.get("cluster")) or {}).get("cluster")
    plugin = exec_plugin(str(ctx.get("user")), user["exec"], os.path.dirname(path),
                         dict(cluster) if isinstance(cluster, dict) else {})
    return index, plugin, entry, path


def user_with_credentials(entry: dict[str, Any], answer: dict[str, str]) -> dict[str, Any]:
    """The user entry with the plugin's answer in place of its exec stanza (and of any
    credentials the answer replaces)."""
    kept = {k: v for k, v in entry["user"].items()
            if k not in ("exec", "token", "tokenFile", "client-certificate", "client-key")}
    return {**entry, "user": {**kept, **answer}}
