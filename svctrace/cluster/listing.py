"""Paginated lists of a whole namespace or cluster, for `doctor` and `snapshot -A`.

Each LIST asks for `limit` items and follows `metadata.continue`, as kubectl does (chunked
lists, `--chunk-size`, 500 by default). Every page is parsed, each item reduced at once to what
is kept (a model object for doctor, the raw item for snapshot), and the page dropped: memory is
bounded by what is kept, not by the size of the responses.

A continue token can expire (410 Gone, "ResourceExpired") when a list takes longer than the API
server keeps its snapshot (etcd compaction, 5 minutes by default). client-go's pager then
starts the list again; so does this module, once per resource, and says so in a note; if the
new attempt expires as well, it stops with a ClusterError saying why.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from svctrace.cluster.convert import (
    ConversionError,
    endpointslice_from_dict,
    node_from_dict,
    pod_from_dict,
    service_from_dict,
)
from svctrace.cluster.live import API_VERSIONS, Connection
from svctrace.errors import ClusterError
from svctrace.model.cluster import ClusterState

T = TypeVar("T")
PAGE_SIZE = 500                     # kubectl's default --chunk-size
RESTARTS = 1                        # fresh starts after an expired continue token
PREFETCH = 2                        # pages fetched ahead of the one being reduced
KINDS = ("services", "endpointslices", "pods", "nodes")
CONVERTERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "services": service_from_dict, "endpointslices": endpointslice_from_dict,
    "pods": pod_from_dict, "nodes": node_from_dict}

Progress = Callable[[str, int], None]          # (resource, items listed so far)


@dataclass
class ClusterListing:
    """What doctor read from the API: the objects, and what it could not read."""

    state: ClusterState
    nodes_known: bool = True                                 # False: nodes forbidden (403)
    pods_forbidden: dict[str, str] = field(default_factory=dict)   # namespace → why
    notes: list[str] = field(default_factory=list)


def list_kept(conn: Connection, resource: str, namespace: str | None,
              keep: Callable[[dict[str, Any]], T], *, page_size: int = PAGE_SIZE,
              progress: Progress | None = None, notes: list[str] | None = None,
              **query: str) -> list[T]:
    """Every item of one resource (in `namespace`, or everywhere when None; `query`: e.g.
    label_selector), each passed through `keep` as its page arrives. Restarts once when the
    continue token expires."""
    for attempt in range(RESTARTS + 1):
        kept = _one_pass(conn, resource, namespace, keep, page_size, progress, query)
        if kept is not None:
            return kept
        if attempt < RESTARTS and notes is not None:
            notes.append(f"the list of {resource} took longer than the API server keeps a "
                         "continue token (410 Expired); listed them again from the start")
    raise ClusterError(f"listing {resource} failed twice: the API server expired the continue "
                       "token (410 Gone) before the list was complete",
                       f"the cluster changes faster than {page_size} items per request can "
                       "follow; try again, or a namespace at a time with -n")


def _one_pass(conn: Connection, resource: str, namespace: str | None,
              keep: Callable[[dict[str, Any]], T], page_size: int,
              progress: Progress | None, query: dict[str, str]) -> list[T] | None:
    """One paginated LIST; None when a continue token expired on the way.

    The next page is requested while this one is reduced (a thread fetches, at most
    PREFETCH pages ahead): the API server's work overlaps ours, and memory stays bounded."""
    kept: list[T] = []
    pages: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=PREFETCH)
    stop = threading.Event()
    threading.Thread(target=_fetch_pages, args=(conn, resource, namespace, page_size, query,
                                                pages, stop),
                     daemon=True, name=f"svctrace-list-{resource}").start()
    try:
        while True:
            what, body = pages.get()
            if what == "error":
                raise body
            if what == "expired":
                return None
            kept.extend(keep(item) for item in body.get("items") or [])
            del body
            if progress is not None:
                progress(resource, len(kept))
            if what == "last":
                return kept
    finally:
        stop.set()


def _fetch_pages(conn: Connection, resource: str, namespace: str | None, page_size: int,
                 query: dict[str, str], pages: queue.Queue[tuple[str, Any]],
                 stop: threading.Event) -> None:
    """Put each page in `pages`: ("page"|"last", body), ("expired", None) or ("error", exc)."""
    token: str | None = None
    call = conn._list_call(resource, namespace)      # noqa: SLF001 - the client's list method
    try:
        while not stop.is_set():
            extra = {"_continue": token} if token else {}
            body = conn.request("list", resource, namespace, call,
                                *([namespace] if namespace else []),
                                allow=(410,) if token else (), limit=page_size, **query,
                                **extra)
            if body is None:
                _put(pages, ("expired", None), stop)
                return
            token = (body.get("metadata") or {}).get("continue") or None
            _put(pages, ("page" if token else "last", body), stop)
            if token is None:
                return
    except BaseException as err:  # noqa: BLE001 - handed to the consumer, raised there
        _put(pages, ("error", err), stop)


def _put(pages: queue.Queue[tuple[str, Any]], item: tuple[str, Any],
         stop: threading.Event) -> None:
    """Put `item`, unless the consumer stopped listening (an error, Ctrl-C) meanwhile."""
    while not stop.is_set():
        try:
            pages.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def raw_item(resource: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """`keep` for raw items: each gets its apiVersion/kind back (list items leave them out)."""
    api_version, kind = API_VERSIONS[resource]
    return lambda item: {"apiVersion": api_version, "kind": kind, **item}


def model_item(resource: str) -> Callable[[dict[str, Any]], Any]:
    """`keep` for doctor: the model object (the same converter explain and snapshots use)."""
    convert = CONVERTERS[resource]

    def keep(item: dict[str, Any]) -> Any:
        try:
            return convert(item)
        except ConversionError as err:
            raise ClusterError(f"unexpected object from the API server: {err}") from None
    return keep


def list_cluster(conn: Connection, namespace: str | None, progress: Progress | None = None,
                 page_size: int = PAGE_SIZE) -> ClusterListing:
    """Services, EndpointSlices, Pods and Nodes of one namespace (None: of every namespace).

    Nodes that may not be listed (403) are noted, as explain does. With every namespace, a
    cluster-wide pod list that is forbidden is retried namespace by namespace (RBAC may grant
    pods per namespace); the namespaces still forbidden are reported, the rest checked."""
    notes: list[str] = []

    def listed(resource: str, ns: str | None) -> list[Any]:
        return list_kept(conn, resource, ns, model_item(resource), page_size=page_size,
                         progress=progress, notes=notes)

    services = listed("services", namespace)
    slices = listed("endpointslices", namespace)
    pods, forbidden = _pods(conn, namespace, {s.namespace for s in services}, listed)
    nodes = _allowed(lambda: listed("nodes", None))
    if nodes is None:
        notes.append("nodes are not readable (403): node readiness and the traffic-policy "
                     "checks use only the nodes seen on pods and endpoints")
    state = ClusterState(services=tuple(services), slices=tuple(slices), pods=tuple(pods),
                         nodes=tuple(nodes or ()), namespace=namespace, source="live")
    return ClusterListing(state, nodes is not None, forbidden, notes)


def _pods(conn: Connection, namespace: str | None, namespaces: set[str],
          listed: Callable[[str, str | None], list[Any]]) -> tuple[list[Any], dict[str, str]]:
    if namespace is not None:
        return listed("pods", namespace), {}
    everywhere = _allowed(lambda: listed("pods", None))
    if everywhere is not None:
        return everywhere, {}
    pods: list[Any] = []
    forbidden: dict[str, str] = {}
    for ns in sorted(namespaces):
        got = _allowed(lambda ns=ns: listed("pods", ns))    # type: ignore[misc]
        if got is None:
            forbidden[ns] = f'cannot list pods in namespace "{ns}" (403 Forbidden)'
        else:
            pods.extend(got)
    return pods, forbidden


def _allowed(call: Callable[[], list[Any]]) -> list[Any] | None:
    """The list, or None when the API server forbids it (403)."""
    try:
        return call()
    except ClusterError as err:
        if "(403 Forbidden)" not in err.message:
            raise
        return None
