"""`--node NAME`: read a node's rules by running iptables-save in the kube-proxy pod on that node,
through the API's exec (channel.k8s.io over a websocket). Read only: the command run is
iptables-save, nothing else; no pod is created.
"""

from __future__ import annotations

import json
from typing import Any

from svctrace.cluster.live import Connection
from svctrace.errors import ClusterError, RulesError

KUBE_PROXY_NAMESPACE = "kube-system"
KUBE_PROXY_SELECTOR = "k8s-app=kube-proxy"
SAVE_COMMAND = ("iptables-save",)


def find_kube_proxy_pod(conn: Connection, node: str) -> str:
    """The name of the kube-proxy pod running on `node` (by label, then by name)."""
    pods = conn.list_raw("pods", KUBE_PROXY_NAMESPACE, field_selector=f"spec.nodeName={node}")
    running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
    labelled = [p for p in running
                if (p.get("metadata", {}).get("labels") or {}).get("k8s-app") == "kube-proxy"]
    named = [p for p in running if p.get("metadata", {}).get("name", "").startswith("kube-proxy")]
    chosen = labelled or named
    if not chosen:
        raise RulesError(
            f'no running kube-proxy pod on node "{node}" (looked in {KUBE_PROXY_NAMESPACE} for '
            f"label {KUBE_PROXY_SELECTOR} or a name starting with kube-proxy)",
            "kube-proxy may run outside a pod there: run 'sudo iptables-save > rules.txt' on "
            f"the node and pass --rules rules.txt --node {node}")
    return str(chosen[0]["metadata"]["name"])


def read_rules_through_exec(conn: Connection, node: str) -> tuple[str, str]:
    """(iptables-save text, source description) read from the kube-proxy pod on `node`."""
    pod = find_kube_proxy_pod(conn, node)
    stdout, stderr, status = _exec(conn, pod, list(SAVE_COMMAND))
    where = f"{KUBE_PROXY_NAMESPACE}/{pod} on node {node}"
    if status is not None and status.get("status") != "Success":
        reason = status.get("message") or stderr.strip() or "failed"
        raise RulesError(f"iptables-save in {where} failed: {reason}")
    if not stdout.strip():
        raise RulesError(f"iptables-save in {where} printed nothing",
                         stderr.strip() or "is kube-proxy running in iptables mode there?")
    return stdout, f"iptables-save in {where}"


def _exec(conn: Connection, pod: str, command: list[str]) -> tuple[str, str, dict | None]:
    from kubernetes.client.exceptions import ApiException
    from kubernetes.stream import stream
    from websocket import WebSocketException

    try:
        resp = stream(conn.core().connect_get_namespaced_pod_exec, pod, KUBE_PROXY_NAMESPACE,
                      command=command, stdin=False, stdout=True, stderr=True, tty=False,
                      _preload_content=False, _request_timeout=conn.timeout)
    except ApiException as err:
        if err.status == 403:
            raise ClusterError(f"access denied: cannot create pods/exec in namespace "
                               f'"{KUBE_PROXY_NAMESPACE}" (403 Forbidden)',
                               "--node needs create on pods/exec in kube-system; or run "
                               "iptables-save on the node and pass --rules FILE") from None
        raise ClusterError(f"exec in {KUBE_PROXY_NAMESPACE}/{pod} failed: {err.status} "
                           f"{err.reason}") from None
    except (WebSocketException, OSError) as err:
        raise ClusterError(f"exec in {KUBE_PROXY_NAMESPACE}/{pod} failed: {err}") from None
    return _collect(resp, conn.timeout)


def _collect(resp: Any, timeout: float) -> tuple[str, str, dict | None]:
    out: list[str] = []
    err: list[str] = []
    while resp.is_open():
        resp.update(timeout=max(timeout, 1.0))
        if resp.peek_stdout():
            out.append(resp.read_stdout())
        if resp.peek_stderr():
            err.append(resp.read_stderr())
    out.append(resp.read_stdout() or "")
    err.append(resp.read_stderr() or "")
    raw_status = resp.read_channel(3)
    resp.close()
    status = None
    if raw_status:
        try:
            status = json.loads(raw_status)
        except ValueError:
            status = {"status": "Failure", "message": raw_status}
    return "".join(out), "".join(err), status
