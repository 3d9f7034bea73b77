"""API objects → model. `live` (the only importer of kubernetes) and `snapshot` read objects;
`convert` turns them into the model for both. This module holds what both share: the
not-found error with its near-name suggestions.
"""

from __future__ import annotations

import difflib

from svctrace.errors import NotFoundError


def near_names(name: str, names: list[str] | set[str], limit: int = 3) -> list[str]:
    """Names close to `name` (typos, a missing suffix), best first."""
    pool = sorted(set(names) - {name})
    close = difflib.get_close_matches(name, pool, n=limit, cutoff=0.6)
    prefixed = [n for n in pool if n not in close and (n.startswith(name) or name.startswith(n))]
    return (close + prefixed)[:limit]


def service_not_found(name: str, namespace: str, names_here: list[str],
                      namespaces_with_name: list[str]) -> NotFoundError:
    """NotFoundError for a Service, with near names in its namespace and the same name elsewhere."""
    hints = [f"did you mean {', '.join(near_names(name, names_here))}?"] \
        if near_names(name, names_here) else []
    elsewhere = sorted(set(namespaces_with_name) - {namespace})
    if elsewhere:
        hints.append(f"a Service {name!r} exists in namespace {', '.join(elsewhere)} "
                     f"(use -n {elsewhere[0]})")
    return NotFoundError(f'service "{name}" not found in namespace "{namespace}"',
                         "; ".join(hints) or None)
