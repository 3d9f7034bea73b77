"""`svctrace snapshot`: capture the API objects explain needs, for later or for a colleague.

Writes a kubectl-style List (Services, EndpointSlices, Pods, Nodes) plus a `svctrace` key
with the svctrace version, the cluster version, the capture time and the namespace. JSON or
YAML by the file's extension; `-f -` writes JSON to stdout. `explain --snapshot FILE` reads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from svctrace.cli import options
from svctrace.errors import UsageError

if TYPE_CHECKING:
    from svctrace.cli.env import Environment
    from svctrace.cluster.live import Connection

HELP = """Capture Services, EndpointSlices, Pods and Nodes of a namespace (or only what the
named Services need) into FILE, for 'svctrace explain --snapshot FILE'."""

KINDS = ("services", "endpointslices", "pods")


def register(app: typer.Typer) -> None:
    app.command("snapshot", help=HELP)(snapshot)


def snapshot(
    services: list[str] = typer.Argument(None, help="Only these Services (svc/NAME or NAME) "
                                         "and what they select.", show_default=False),
    file: str = typer.Option(..., "-f", "--file", help="Where to write: *.json, *.yaml/*.yml, "
                             "or '-' for stdout (JSON)."),
    namespace: str = options.Namespace,
    all_namespaces: bool = typer.Option(False, "-A", "--all-namespaces",
                                        help="Capture every namespace."),
    context: str = options.Context,
    kubeconfig: str = options.Kubeconfig,
    request_timeout: str = typer.Option("5s", "--request-timeout",
                                        help="How long to wait for each API request."),
    quiet: bool = options.Quiet,
) -> None:
    from svctrace.cli.env import Environment
    from svctrace.cli.explain_cmd import parse_duration, parse_service_ref
    from svctrace.cluster.live import connect, overall_deadline

    if all_namespaces and services:
        raise UsageError("-A cannot be combined with Service names", "use -n NAMESPACE")
    names = [parse_service_ref(s) for s in services or []]
    env = Environment(quiet=quiet)
    timeout = parse_duration(request_timeout)
    conn = connect(kubeconfig, context, timeout, overall_deadline(timeout))
    for note in conn.notes:
        env.note(note)
    ns = None if all_namespaces else (namespace or conn.namespace)
    items = capture_services(conn, ns or "", names) if names else capture_namespace(conn, ns)
    items += capture_nodes(conn, env)
    document = snapshot_of(conn, items, ns)
    write_document(document, file, env)
    env.note(f"wrote {_summary(items)} to {'stdout' if file == '-' else file}")


def capture_namespace(conn: Connection, namespace: str | None) -> list[dict[str, Any]]:
    """Every Service, EndpointSlice and Pod of a namespace (None: of every namespace), read
    page by page (kubectl's chunked lists)."""
    return [item for kind in KINDS for item in _sorted(_list_all(conn, kind, namespace))]


def _list_all(conn: Connection, kind: str, namespace: str | None) -> list[dict[str, Any]]:
    from svctrace.cluster.listing import list_kept, raw_item
    return list_kept(conn, kind, namespace, raw_item(kind))


def capture_services(conn: Connection, namespace: str, names: list[str]) -> list[dict[str, Any]]:
    """Only the named Services, their EndpointSlices and the pods their selectors match."""
    from svctrace.model.cluster import SERVICE_NAME_LABEL, selector_text
    services, slices, pods = [], [], []
    for name in dict.fromkeys(names):
        raw = conn.read_service_raw(name, namespace)
        services.append({"apiVersion": "v1", "kind": "Service", **raw})
        slices += conn.list_raw("endpointslices", namespace,
                                label_selector=f"{SERVICE_NAME_LABEL}={name}")
        selector = (raw.get("spec") or {}).get("selector") or {}
        if selector:
            pods += conn.list_raw("pods", namespace, label_selector=selector_text(selector))
    unique = {(p["metadata"]["name"]): p for p in pods}
    return _sorted(services) + _sorted(slices) + _sorted(list(unique.values()))


def capture_nodes(conn: Connection, env: Environment) -> list[dict[str, Any]]:
    """All nodes; a note (not an error) when nodes may not be listed."""
    from svctrace.errors import ClusterError
    try:
        return _sorted(_list_all(conn, "nodes", None))
    except ClusterError as err:
        if "403" not in err.message:
            raise
        env.note("nodes are not readable (403): the snapshot has no Node objects")
        return []


def snapshot_of(conn: Connection, items: list[dict[str, Any]],
                namespace: str | None) -> dict[str, Any]:
    from datetime import UTC, datetime

    from svctrace import __version__
    from svctrace.cluster.snapshot import snapshot_document
    from svctrace.errors import ClusterError
    try:
        version = conn.server_version()
    except ClusterError:
        version = None
    captured = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return snapshot_document(items, {"svctraceVersion": __version__, "clusterVersion": version,
                                     "capturedAt": captured, "namespace": namespace,
                                     "context": conn.context})


def write_document(document: dict[str, Any], file: str, env: Environment) -> None:
    """JSON for *.json and '-', YAML for *.yaml/*.yml."""
    import json
    if file.endswith((".yaml", ".yml")):
        import yaml
        text = yaml.safe_dump(document, sort_keys=True)
    else:
        text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if file == "-":
        env.stdout.write(text)
        return
    try:
        with open(file, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as err:
        raise UsageError(f"{file}: cannot write snapshot: {err.strerror}") from None


def _sorted(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda i: (i["metadata"].get("namespace") or "",
                                        i["metadata"]["name"]))


def _summary(items: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for item in items:
        counts[item["kind"]] = counts.get(item["kind"], 0) + 1
    return ", ".join(f"{n} {kind}(s)" for kind, n in counts.items()) or "no objects"
