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
        said = stderr.strip().splitlines()
        raise RulesError(f"iptables-save in {where} failed: {reason}",
                         f"it said: {said[-1]}" if said else None)
    if not stdout.strip():
        raise RulesError(f"iptables-save in {where} printed nothing",
                         stderr.strip() or "is kube-proxy running in iptables mode there?")
    return stdout, f"iptables-save in {where}"


def _exec(conn: Connection, pod: str, command: list[str]) -> tuple[str, str, dict | None]:
    from kubernetes.client.exceptions import ApiException
    from kubernetes.stream import stream
    from websocket import WebSocketException

    where = f"{KUBE_PROXY_NAMESPACE}/{pod}"
    try:
        # binary: frames are decoded once at the end, not one by one (a frame boundary may
        # split a UTF-8 character of a rule comment)
        resp = stream(conn.core().connect_get_namespaced_pod_exec, pod, KUBE_PROXY_NAMESPACE,
                      command=command, stdin=False, stdout=True, stderr=True, tty=False,
                      binary=True, _preload_content=False, _request_timeout=conn.timeout)
    except (ApiException, WebSocketException, OSError, AttributeError) as err:
        # The client's websocket_call turns every failure, a refused upgrade (403…) included,
        # into ApiException(status=0) without a body, on which ApiClient then fails with
        # AttributeError; the handshake's status and Status body are in the exception chain.
        raise _exec_error(err, where) from None
    try:
        return _collect(resp, conn.timeout, where)
    except (WebSocketException, OSError) as err:
        raise ClusterError(f"exec in {where} failed: the connection was lost "
                           f"({type(err).__name__})") from None


def _exec_error(err: BaseException, where: str) -> ClusterError:
    """The ClusterError for an exec that could not start; re-raises what is not the client's."""
    from kubernetes.client.exceptions import ApiException
    from websocket import WebSocketBadStatusException, WebSocketException

    chain = [err]
    while (nxt := chain[-1].__cause__ or chain[-1].__context__) and nxt not in chain:
        chain.append(nxt)
    if not any(isinstance(e, ApiException | WebSocketException | OSError) for e in chain):
        raise err                                   # not the client's failure: our own bug
    bad = next((e for e in chain if isinstance(e, WebSocketBadStatusException)), None)
    api = next((e for e in chain if isinstance(e, ApiException) and e.status), None)
    status, body = ((bad.status_code, bad.resp_body) if bad is not None
                    else (api.status, api.body) if api is not None else (0, None))
    if status == 403:
        return ClusterError(f"access denied: cannot create pods/exec in namespace "
                            f'"{KUBE_PROXY_NAMESPACE}" (403 Forbidden)',
                            "--node needs create on pods/exec in kube-system; or run "
                            "iptables-save on the node and pass --rules FILE")
    if status:
        message = _status_message(body)
        return ClusterError(f"exec in {where} failed: the API server answered {status}"
                            + (f": {message}" if message else ""))
    text = str(chain[-1]).strip().splitlines()
    return ClusterError(f"exec in {where} failed: {type(chain[-1]).__name__}"
                        + (f": {text[0]}" if text else ""))


def _status_message(body: Any) -> str:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not body:
        return ""
    try:
        return str(json.loads(body).get("message") or "")
    except (ValueError, AttributeError):
        return str(body).strip().splitlines()[0]


def _collect(resp: Any, timeout: float, where: str) -> tuple[str, str, dict | None]:
    import time

    limit = max(timeout, 1.0)
    out: list[bytes] = []
    err: list[bytes] = []
    while resp.is_open():
        began = time.monotonic()
        resp.update(timeout=limit)
        if resp.is_open() and time.monotonic() - began >= limit:
            resp.close(timeout=0)        # no waiting for the silent side's close frame
            raise ClusterError(f"exec in {where}: no output for {limit:g}s",
                               "check the node, or raise --request-timeout")
        if resp.peek_stdout():
            out.append(resp.read_stdout())
        if resp.peek_stderr():
            err.append(resp.read_stderr())
    out.append(resp.read_stdout() or b"")
    err.append(resp.read_stderr() or b"")
    raw_status = (resp.read_channel(3) or b"").decode("utf-8", "replace")
    resp.close()
    status = None
    if raw_status:
        try:
            status = json.loads(raw_status)
        except ValueError:
            status = {"status": "Failure", "message": raw_status}
    return (b"".join(out).decode("utf-8", "replace"), b"".join(err).decode("utf-8", "replace"),
            status)
