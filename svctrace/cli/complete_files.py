"""Names for a TAB from the files on the line: Services, namespaces and nodes from a
`--snapshot` file, Service names from a `--rules` file.

A TAB must never hang or eat memory, whatever the path typed: `/dev/zero`, a FIFO nobody
writes, a 127 MB snapshot or a YAML alias bomb. So only a regular file is read, only when it
is small enough to parse within a TAB's time (larger ones give no names, at once), and the
caller bounds the parsing with the same one-second deadline a live look-up has. YAML alias
expansion is bounded by the snapshot reader itself (svctrace.cluster.snapshot).
"""

from __future__ import annotations

import os
import re
import stat

SNAPSHOT_SCAN_LIMIT = 8 * 1024 * 1024    # bytes; a larger snapshot completes nothing
RULES_SCAN_LIMIT = 32 * 1024 * 1024      # bytes; a larger iptables-save file completes nothing


def read_small_file(path: str, limit: int) -> str | None:
    """The text of `path` if it is a regular file of at most `limit` bytes, else None.

    Opened non-blocking, so a FIFO with no writer is seen (and refused) instead of waited
    for; the size is checked before reading and again while reading (the file may grow)."""
    try:
        fd = os.open(os.path.expanduser(path),
                     os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1024 * 1024, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return None if size > limit else b"".join(chunks).decode("utf-8", errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def snapshot_names(path: str, kind: str, namespace: str | None) -> list[str]:
    """Service, namespace or node names in a snapshot file ([] when it cannot be read)."""
    if path == "-":
        return []                       # stdin belongs to the shell, not to us
    text = read_small_file(path, SNAPSHOT_SCAN_LIMIT)
    if text is None:
        return []
    from svctrace.cluster.snapshot import parse_snapshot
    try:
        state = parse_snapshot(text, path)
    except Exception:  # noqa: BLE001 - SnapshotError, or anything a half-written file causes
        return []
    if kind == "nodes":
        return [n.name for n in state.nodes]
    if kind == "namespaces":
        return [s.namespace for s in state.services]
    if kind == "services":
        return [s.name for s in state.services if namespace in (None, s.namespace)]
    return []


# kube-proxy's comment on a KUBE-SERVICES entry: "NAMESPACE/NAME[:PORT] cluster IP" (the
# comments vanish above 1,000 endpoints; then there is nothing to offer, which is fine)
_RULES_COMMENT = re.compile(r'^-A KUBE-SERVICES .*?--comment "?([a-z0-9.-]+)/([a-z0-9.-]+)',
                            re.MULTILINE)


# nftables mode: per-service chain names (kube-proxy-semantics.md §2.4), in any of nft's forms
_NFT_CHAIN = re.compile(r"\b(?:service|local|external|firewall)-[A-Z2-7]{8}-"
                        r"([a-z0-9.-]+)/([a-z0-9.-]+)/")


def rules_file_names(path: str, namespace: str | None) -> list[str]:
    """Service names in a rules file: kube-proxy's rule comments (iptables-save) or its
    per-service chain names (nft output)."""
    if path == "-":
        return []
    text = read_small_file(path, RULES_SCAN_LIMIT)
    if text is None:
        return []
    found = _RULES_COMMENT.findall(text) + _NFT_CHAIN.findall(text)
    return list(dict.fromkeys(name for ns, name in found if namespace in (None, ns)))
