"""`--node NAME`: read a node's rules by running iptables-save in the kube-proxy pod on that node,
through the API's exec (channel.k8s.io over a websocket). Read only: the commands run are
iptables-save and, for a node in nftables mode, `nft -j list ruleset` (`nft list ruleset` where
nft has no JSON), nothing else; no pod is created.

nftables mode is recognised from what comes back: iptables-save shows no KUBE-SERVICES chain,
or the pod's command line says `--proxy-mode=nftables`. A node in nftables mode whose
iptables-save still shows KUBE-SERVICES (a mode switch that left them behind) gets both, as
`iptables-save` followed by `nft list ruleset` (RULES-MODE-SPLIT).

Only with `--debug-pod IMAGE`, and only when the node has no running kube-proxy pod, a
short-lived privileged pod is created on the node from IMAGE (in kube-system, labelled
app.kubernetes.io/managed-by=svctrace), iptables-save runs in it the same way, and it is
deleted in every case: on errors, on Ctrl-C and on SIGTERM too. Should svctrace be killed
outright, the pod's own command (`sleep 120`) and activeDeadlineSeconds end it anyway; a
deletion that fails is said on stderr, with the pod's name.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from svctrace.cluster.deadline import TimedOut, bounded
from svctrace.cluster.live import Connection
from svctrace.cluster.names import check_name, redact
from svctrace.errors import ClusterError, RulesError

KUBE_PROXY_NAMESPACE = "kube-system"
KUBE_PROXY_SELECTOR = "k8s-app=kube-proxy"
SAVE_COMMAND = ("iptables-save",)
NFT_JSON_COMMAND = ("nft", "-j", "list", "ruleset")
NFT_TEXT_COMMAND = ("nft", "list", "ruleset")

DEBUG_POD_PREFIX = "svctrace-debug-"
DEBUG_POD_LABELS = {"app.kubernetes.io/managed-by": "svctrace"}
DEBUG_POD_COMMAND = ("sleep", "120")     # ends by itself should svctrace be killed
DEBUG_POD_DEADLINE = 300                 # activeDeadlineSeconds: the kubelet's backstop
DEBUG_POD_WAIT = 60.0                    # how long to wait for it to run
DEBUG_POD_NEEDS = ("--debug-pod needs create and delete on pods and create on pods/exec in "
                   "kube-system")
# container states in which the debug pod will not start by itself
NOT_STARTING = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
                "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
                "CrashLoopBackOff")
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # as the API server's generateName suffixes


def find_kube_proxy_pod(conn: Connection, node: str) -> str:
    """The name of the kube-proxy pod running on `node` (by label, then by name)."""
    pod = _kube_proxy_pod(conn, node)
    if pod is None:
        raise _no_kube_proxy_pod(node)
    return str(pod["metadata"]["name"])


def _kube_proxy_pod(conn: Connection, node: str) -> dict[str, Any] | None:
    check_name("node", node)
    pods = conn.list_raw("pods", KUBE_PROXY_NAMESPACE, field_selector=f"spec.nodeName={node}")
    return _running_kube_proxy(pods)


def choose_kube_proxy_pod(pods: list[dict[str, Any]]) -> str | None:
    """Of one node's kube-system pods, the running kube-proxy one's name (by label, then by
    name)."""
    chosen = _running_kube_proxy(pods)
    return str(chosen["metadata"]["name"]) if chosen else None


def _running_kube_proxy(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
    labelled = [p for p in running
                if (p.get("metadata", {}).get("labels") or {}).get("k8s-app") == "kube-proxy"]
    named = [p for p in running if p.get("metadata", {}).get("name", "").startswith("kube-proxy")]
    chosen = labelled or named
    return chosen[0] if chosen else None


def proxy_mode(pod: dict[str, Any]) -> str | None:
    """`--proxy-mode` from the kube-proxy pod's command line (None: not given there, e.g. set
    in its config file)."""
    for container in (pod.get("spec") or {}).get("containers") or []:
        words = [str(w) for w in (container.get("command") or []) + (container.get("args") or [])]
        for i, word in enumerate(words):
            if word.startswith("--proxy-mode="):
                return word.split("=", 1)[1]
            if word == "--proxy-mode" and i + 1 < len(words):
                return words[i + 1]
    return None


def _no_kube_proxy_pod(node: str) -> RulesError:
    return RulesError(
        f'no running kube-proxy pod on node "{node}" (looked in {KUBE_PROXY_NAMESPACE} for '
        f"label {KUBE_PROXY_SELECTOR} or a name starting with kube-proxy)",
        "kube-proxy may run outside a pod there: run 'sudo iptables-save > rules.txt' on "
        f"the node and pass --rules rules.txt --node {node}, or add --debug-pod IMAGE to run "
        "iptables-save in a short-lived privileged pod there (IMAGE with iptables-save, e.g. "
        "the cluster's kube-proxy image)")


def read_rules_through_exec(conn: Connection, node: str,
                            debug_image: str | None = None) -> tuple[str, str]:
    """(iptables-save text, source description) read from the kube-proxy pod on `node`; with
    `debug_image`, from a debug pod when the node has no running kube-proxy pod."""
    pod = _kube_proxy_pod(conn, node)
    if pod is None:
        if not debug_image:
            raise _no_kube_proxy_pod(node)
        return read_rules_in_debug_pod(conn, node, debug_image)
    name = str(pod["metadata"]["name"])
    return save_rules_in_pod(conn, name, node, proxy_mode(pod) == "nftables")


def save_rules_in_pod(conn: Connection, pod: str, node: str,
                      nftables: bool = False) -> tuple[str, str]:
    """(rules text, source description) read from kube-proxy pod `pod` on `node`."""
    where = f"{KUBE_PROXY_NAMESPACE}/{pod} on node {node}"
    text, ran = read_rules_in_pod(conn, pod, where, nftables)
    return text, f"{ran} in {where}"


def read_rules_in_pod(conn: Connection, pod: str, where: str,
                      nftables: bool = False) -> tuple[str, str]:
    """(rules text, the commands that printed it) from `pod`: iptables-save, and nft when
    iptables-save shows no kube-proxy chains or `nftables` says the pod runs that mode."""
    stdout, stderr, status = _exec(conn, pod, list(SAVE_COMMAND))
    iptables_ok = _succeeded(status) and ":KUBE-SERVICES " in stdout
    if iptables_ok and not nftables:
        return stdout, "iptables-save"
    nft = _nft_ruleset(conn, pod, text_only=iptables_ok)
    if nft is not None and (iptables_ok or "kube-proxy" in nft[0] or not stdout.strip()):
        if iptables_ok:             # both modes' rules: the form detect.py reads as a split
            return stdout + nft[0], f"iptables-save and {nft[1]}"
        return nft
    return _saved_rules(stdout, stderr, status, where, "is kube-proxy running there in "
                        "iptables mode or nftables mode? neither iptables-save nor nft showed "
                        "its rules"), "iptables-save"


def _nft_ruleset(conn: Connection, pod: str, text_only: bool) -> tuple[str, str] | None:
    """(ruleset, command) from `nft -j list ruleset`, else `nft list ruleset`; None when nft
    is missing or printed nothing."""
    for command in ((NFT_TEXT_COMMAND,) if text_only else (NFT_JSON_COMMAND, NFT_TEXT_COMMAND)):
        stdout, _, status = _exec(conn, pod, list(command))
        if _succeeded(status) and stdout.strip():
            return stdout, " ".join(command)
    return None


def _succeeded(status: dict | None) -> bool:
    return status is None or status.get("status") == "Success"


def own_connection(conn: Connection, timeout: float) -> Connection:
    """A Connection with its own API client, for one thread: the client's `stream()` swaps
    the ApiClient's request method while an exec runs, so threads must not share one."""
    from kubernetes.client.api_client import ApiClient

    return Connection(ApiClient(configuration=conn.api_client.configuration), conn.server,
                      conn.context, conn.namespace, timeout, conn.deadline)


def _saved_rules(stdout: str, stderr: str, status: dict | None, where: str,
                 empty_hint: str) -> str:
    if status is not None and status.get("status") != "Success":
        reason = status.get("message") or stderr.strip() or "failed"
        said = stderr.strip().splitlines()
        raise RulesError(f"iptables-save in {where} failed: {reason}",
                         f"it said: {said[-1]}" if said else None)
    if not stdout.strip():
        raise RulesError(f"iptables-save in {where} printed nothing",
                         stderr.strip() or empty_hint)
    return stdout


# --- the debug pod (--debug-pod IMAGE) -----------------------------------------------------

def debug_pod_name(node: str) -> str:
    """`svctrace-debug-<node>-<5 random characters>`, within 63 characters."""
    import secrets

    suffix = "".join(secrets.choice(_NAME_CHARS) for _ in range(5))
    room = 63 - len(DEBUG_POD_PREFIX) - len(suffix) - 1
    middle = node.lower()[:room].rstrip("-.") or "node"
    return f"{DEBUG_POD_PREFIX}{middle}-{suffix}"


def debug_pod_manifest(name: str, node: str, image: str) -> dict[str, Any]:
    """The debug pod: privileged, in the node's network namespace, pinned to the node
    (tolerating every taint), sleeping until exec'd into, gone after DEBUG_POD_DEADLINE."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": KUBE_PROXY_NAMESPACE,
                     "labels": dict(DEBUG_POD_LABELS)},
        "spec": {
            "nodeName": node,
            "hostNetwork": True,
            "hostPID": False,
            "restartPolicy": "Never",
            "tolerations": [{"operator": "Exists"}],
            "activeDeadlineSeconds": DEBUG_POD_DEADLINE,
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": False,
            "containers": [{
                "name": "iptables",
                "image": image,
                "command": list(DEBUG_POD_COMMAND),
                # NET_ADMIN would do for iptables-nft; legacy reads need privileged (NET_RAW)
                "securityContext": {"privileged": True},
            }],
        },
    }


def read_rules_in_debug_pod(conn: Connection, node: str, image: str,
                            wait: float = DEBUG_POD_WAIT) -> tuple[str, str]:
    """Create a debug pod on `node` from `image`, run iptables-save in it, delete it (always,
    Ctrl-C and SIGTERM included). (text, source description)."""
    name = debug_pod_name(node)
    where = f"debug pod {KUBE_PROXY_NAMESPACE}/{name} on node {node}"
    deleted = False
    conn.deadline += wait                    # waiting for it to start is not the cluster's fault
    with _Interrupts() as interrupts:
        may_exist = True                     # from the POST on, unless it was refused
        try:
            try:
                _create_debug_pod(conn, name, node, image)
            except _CreateRefused:
                may_exist = False
                raise
            interrupts.check()
            _wait_running(conn, name, where, image, wait, interrupts)
            text, ran = read_rules_in_pod(conn, name, where)
            interrupts.check()
        finally:
            if may_exist:
                deleted = _delete_debug_pod(conn, name)
    state = "deleted" if deleted else "NOT deleted: delete it by hand"
    return text, f"{ran} in {where} ({state})"


def _create_debug_pod(conn: Connection, name: str, node: str, image: str) -> None:
    """POST the pod: _CreateRefused when the API server answered with an error (there is no
    pod), ClusterError when it did not answer (there may be one)."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    ns = KUBE_PROXY_NAMESPACE
    seconds = conn.budget()
    try:
        with bounded(seconds):
            resp = conn.core().create_namespaced_pod(ns, debug_pod_manifest(name, node, image),
                                                     _preload_content=False,
                                                     _request_timeout=seconds)
            resp.read()                              # the connection can be reused
    except TimedOut:                         # no answer in time: it may have been created
        raise conn.timeout_error(seconds) from None
    except ApiException as err:
        if err.status == 0:                  # no answer: it may have been created
            raise conn._transport_error(err) from None
        raise _create_error(conn, err) from None
    except HTTPError as err:                 # a timeout or a lost connection: it may exist
        raise conn._transport_error(err) from None


class _CreateRefused(ClusterError):
    """The API server answered the POST with an error: there is no pod to delete."""


def _create_error(conn: Connection, err: Any) -> _CreateRefused:
    ns = KUBE_PROXY_NAMESPACE
    if err.status == 403:
        return _CreateRefused(f'access denied: cannot create pods in namespace "{ns}" '
                              "(403 Forbidden)",
                              f"{DEBUG_POD_NEEDS}; check with 'kubectl auth can-i create "
                              f"pods -n {ns}'")
    message = _status_message(err.body)
    if err.status in (400, 422) and message:
        return _CreateRefused(f"the API server refused the debug pod ({err.status}): "
                              f"{message}", "check the --debug-pod IMAGE reference")
    if message:
        return _CreateRefused(f"creating the debug pod in {ns} failed: the API server "
                              f"answered {err.status}: {message}")
    error = conn._api_error(err, "create", "pods", ns)
    return _CreateRefused(error.message, error.hint)


def _wait_running(conn: Connection, name: str, where: str, image: str, wait: float,
                  interrupts: _Interrupts) -> None:
    """Poll the pod until it runs; RulesError when it will not, or not within `wait`."""
    ns = KUBE_PROXY_NAMESPACE
    deadline = time.monotonic() + wait
    pause = 0.1
    while True:
        raw = conn.request("get", "pods", ns, conn.core().read_namespaced_pod, name, ns,
                           allow=(404,))
        if raw is None:
            raise RulesError(f"{where} disappeared before iptables-save could run",
                             "was it deleted by someone else?")
        status = raw.get("status") or {}
        phase = status.get("phase") or "Pending"
        if phase == "Running":
            return
        problem = _start_problem(status)
        if problem or phase in ("Failed", "Succeeded"):
            raise RulesError(f"{where} did not start: {problem or 'phase ' + phase}",
                             f"is {image!r} an image the node can pull, and does it contain "
                             "sleep and iptables-save? (e.g. the cluster's kube-proxy image: "
                             "kubectl -n kube-system get ds kube-proxy -o "
                             "jsonpath='{..image}')")
        state = f"phase {phase}" + (f", {_waiting_reason(status)}"
                                    if _waiting_reason(status) else "")
        if time.monotonic() + pause > deadline:
            raise RulesError(f"{where} was not running after {wait:g}s ({state})",
                             f"look at it with 'kubectl -n {ns} describe pod {name}' while it "
                             "starts, then try again")
        time.sleep(pause)
        interrupts.check()
        pause = min(pause * 2, 1.0)


def _container_states(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [c.get("state") or {} for c in (*(status.get("initContainerStatuses") or []),
                                           *(status.get("containerStatuses") or []))]


def _waiting_reason(status: dict[str, Any]) -> str:
    return next((s["waiting"].get("reason") or "" for s in _container_states(status)
                 if s.get("waiting")), "")


def _start_problem(status: dict[str, Any]) -> str:
    """Why the pod will not start by itself, or ""."""
    for state in _container_states(status):
        waiting, ended = state.get("waiting") or {}, state.get("terminated") or {}
        if waiting.get("reason") in NOT_STARTING:
            message = (waiting.get("message") or "").strip().splitlines()
            return waiting["reason"] + (f": {message[0]}" if message else "")
        if ended:
            message = (ended.get("message") or "").strip().splitlines()
            return (f"its container ended ({ended.get('reason') or 'terminated'}, exit code "
                    f"{ended.get('exitCode')})" + (f": {message[0]}" if message else ""))
    if status.get("phase") == "Failed":
        return "phase Failed" + (f" ({status['reason']})" if status.get("reason") else "") + \
            (f": {status['message']}" if status.get("message") else "")
    return ""


def _delete_debug_pod(conn: Connection, name: str) -> bool:
    """DELETE the pod (grace period 0), a second try after a failure without an answer;
    Ctrl-C and SIGTERM wait until it is done. A client of its own: an interrupt may have left
    the other one's connections half-used. False, with a note on stderr, when the pod may
    still exist."""
    from kubernetes.client.api.core_v1_api import CoreV1Api
    from kubernetes.client.api_client import ApiClient
    from kubernetes.client.exceptions import ApiException

    ns = KUBE_PROXY_NAMESPACE
    problem = ""
    with _interrupts_deferred():
        core = CoreV1Api(ApiClient(configuration=conn.api_client.configuration))
        for _ in range(2):
            try:
                with bounded(conn.timeout):      # the request timeout, never the deadline
                    resp = core.delete_namespaced_pod(name, ns, grace_period_seconds=0,
                                                      _preload_content=False,
                                                      _request_timeout=conn.timeout)
                    resp.read()                      # the connection can be reused
                return True
            except ApiException as err:
                if err.status == 404:            # gone already
                    return True
                problem = (f"{err.status} {err.reason or ''}".strip() if err.status
                           else type(err).__name__)
                if 400 <= err.status < 500:
                    break
            except Exception as err:  # noqa: BLE001 - never leave the pod silently
                reason = getattr(err, "reason", None)
                problem = type(err).__name__ + (f": {type(reason).__name__}" if reason else "")
        sys.stderr.write(f"svctrace: warning: could not delete the debug pod {ns}/{name} "
                         f"({problem}); delete it with 'kubectl -n {ns} delete pod {name}' "
                         f"(it ends by itself within {DEBUG_POD_DEADLINE}s)\n")
        sys.stderr.flush()
    return False


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class _Interrupts:
    """For the duration, SIGTERM raises KeyboardInterrupt as Ctrl-C does, so that `finally`
    blocks run, and both are remembered: an interrupt that lands where Python swallows
    exceptions (a finaliser such as a socket's __del__) is raised again by `check()`, without
    the "Exception ignored" traceback. The previous handlers come back afterwards."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.caught = False
        self._old: dict[int, Any] = {}
        self._old_hook: Any = None

    def __enter__(self) -> _Interrupts:
        if _in_main_thread():
            self._old = {sig: signal.signal(sig, self._interrupt) for sig in self.SIGNALS}
            self._old_hook = sys.unraisablehook
            sys.unraisablehook = self._unraisable
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        if self._old_hook is not None:
            sys.unraisablehook = self._old_hook
        if exc_type is None:
            self.check()

    def _unraisable(self, info: Any) -> None:
        if not (self.caught and info.exc_type is KeyboardInterrupt):
            self._old_hook(info)

    def _interrupt(self, signum: int, frame: Any) -> None:
        self.caught = True
        raise KeyboardInterrupt

    def check(self) -> None:
        if self.caught:
            raise KeyboardInterrupt


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done (a cleanup must not be cut short),
    then raise KeyboardInterrupt."""
    if not _in_main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        caught.append(signum)

    olds = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in olds.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
    if caught:
        raise KeyboardInterrupt


def _exec(conn: Connection, pod: str, command: list[str]) -> tuple[str, str, dict | None]:
    from kubernetes.client.exceptions import ApiException
    from kubernetes.stream import stream
    from websocket import WebSocketException

    where = f"{KUBE_PROXY_NAMESPACE}/{pod}"
    seconds = conn.budget()
    try:
        # binary: frames are decoded once at the end, not one by one (a frame boundary may
        # split a UTF-8 character of a rule comment)
        with bounded(seconds):                   # connect, TLS and the upgrade
            resp = stream(conn.core().connect_get_namespaced_pod_exec, pod,
                          KUBE_PROXY_NAMESPACE, command=command, stdin=False, stdout=True,
                          stderr=True, tty=False, binary=True, _preload_content=False,
                          _request_timeout=seconds)
    except TimedOut:
        raise ClusterError(f"exec in {where}: the API server did not start it within "
                           f"{seconds:g}s", "check the network, or raise --request-timeout"
                           ) from None
    except (ApiException, WebSocketException, OSError, AttributeError) as err:
        # The client's websocket_call turns every failure, a refused upgrade (403…) included,
        # into ApiException(status=0) without a body, on which ApiClient then fails with
        # AttributeError; the handshake's status and Status body are in the exception chain.
        raise _exec_error(err, where) from None
    try:
        with bounded(conn.deadline - time.monotonic()):      # the output: until the deadline
            return _collect(resp, conn.timeout, where)
    except TimedOut:
        resp.close(timeout=0)
        raise conn.overall_error() from None
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
    text = redact(str(chain[-1])).strip().splitlines()
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
