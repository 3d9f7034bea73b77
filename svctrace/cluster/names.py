"""Names checked as Kubernetes checks them, before they go into a request path or a selector,
and server URLs with their credentials taken out before they go into a message.

A name such as `..` would otherwise reach the API as a dot-segment (`GET .../services/..` is
`GET .../namespaces/NS`), and a comma in a node name would add a term to a field selector.
The rules are apimachinery's (staging/src/k8s.io/apimachinery/pkg/util/validation): Services
are DNS-1035 labels, namespaces DNS-1123 labels, nodes DNS-1123 subdomains.
"""

from __future__ import annotations

import re

from svctrace.errors import UsageError

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL = re.compile(_LABEL, re.ASCII)
DNS1123_SUBDOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})*", re.ASCII)
DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?", re.ASCII)

RULES = {
    # kind: (pattern, longest, what it must be)
    "Service": (DNS1035_LABEL, 63, "a DNS-1035 label: lowercase letters, digits and '-', "
                                   "starting with a letter, at most 63 characters"),
    "namespace": (DNS1123_LABEL, 63, "a DNS-1123 label: lowercase letters, digits and '-', "
                                     "at most 63 characters"),
    "node": (DNS1123_SUBDOMAIN, 253, "a DNS-1123 subdomain: lowercase letters, digits, '-' "
                                     "and '.', at most 253 characters"),
}


def check_name(kind: str, name: str) -> str:
    """`name` when it is a valid name for a `kind` (Service, namespace, node); UsageError
    (exit 2) otherwise."""
    pattern, longest, rule = RULES[kind]
    if len(name) <= longest and pattern.fullmatch(name):
        return name
    shown = repr(name) if len(name) <= 80 else repr(name[:77]) + "..."
    raise UsageError(f"invalid {kind} name {shown}: a {kind} name must be {rule}")


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s]*@")


def redact(text: str) -> str:
    """`text` with the user and password of every URL in it replaced
    (`https://user:secret@host` → `https://REDACTED@host`)."""
    return _USERINFO.sub(r"\1REDACTED@", text)
