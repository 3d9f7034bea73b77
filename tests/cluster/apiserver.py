"""A stand-in Kubernetes API server for tests and the benchmark.

Real HTTPS (a self-signed certificate made with the openssl CLI), HTTP/1.1 keep-alive, and
real-format objects: list items come back without kind/apiVersion, errors as Status objects,
as kube-apiserver sends them. Label and field selectors are URL-decoded and applied. Every
request is recorded, and any path can be made to fail (401/403/404/500…) or to be slow.

`pods/{name}/exec` speaks the exec protocol the way kube-apiserver does: an RFC 6455 websocket
upgrade negotiating a channel.k8s.io subprotocol, then binary frames whose first byte is the
channel (1 stdout, 2 stderr, 3 the final Status), then a close frame. What each pod's command
prints and how it exits is set with `on_exec`; refusals (403…) answer the upgrade request
itself with a Status, as the real server does.

Pods can also be created (POST, as the debug pod of `explain --node --debug-pod` is) and
deleted (DELETE): a created pod joins the objects, exec in it works, and each GET of it moves
its status one step along `pod_lifecycle` (default Pending, then Running) and stays at the
last step (`lifecycle(PENDING)` holds it Pending; `lifecycle(PENDING, waiting("ErrImagePull"))`
fails its image pull).
"""

from __future__ import annotations

import base64
import copy
import fnmatch
import hashlib
import json
import re
import ssl
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
EXEC_ROUTE = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<pod>[^/]+)/exec$")
# kube-apiserver's preference order (v5 first since 1.30); `channel.k8s.io` is v1
CHANNEL_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io",
                     "v2.channel.k8s.io", "channel.k8s.io")

GROUP_PATHS = {"Service": "/api/v1", "Pod": "/api/v1", "Node": "/api/v1",
               "EndpointSlice": "/apis/discovery.k8s.io/v1"}
PLURALS = {"services": "Service", "pods": "Pod", "nodes": "Node",
           "endpointslices": "EndpointSlice", "namespaces": "Namespace"}
ROUTE = re.compile(r"^/(?:api/v1|apis/discovery\.k8s\.io/v1)"
                   r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[a-z]+)(?:/(?P<name>[^/]+))?$")


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost (cert, key)."""
    cert, key = directory / "tls.crt", directory / "tls.key"
    if not cert.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=fake",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       check=True, capture_output=True)
    return cert, key


def load_items(*paths: Path) -> list[dict[str, Any]]:
    """The items of kubectl List files."""
    items: list[dict[str, Any]] = []
    for path in paths:
        items.extend(json.loads(Path(path).read_text())["items"])
    return items


def match_labels(selector: str, labels: dict[str, str]) -> bool:
    """Equality-based label selector (`a=b,c==d,e!=f,g`), as the API server applies it."""
    for term in filter(None, selector.split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = re.split(r"==?", term, maxsplit=1)
            if labels.get(key) != value:
                return False
        elif term not in labels:
            return False
    return True


def field_value(obj: dict[str, Any], path: str) -> str:
    """A field selector's value of `obj` (`spec.nodeName`, `status.phase`…); "" when absent."""
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def match_fields(selector: str, obj: dict[str, Any]) -> bool:
    """Field selector (`a=b,c==d,e!=f`) over dotted paths, as the API server applies it."""
    for term in filter(None, selector.split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if field_value(obj, key) == value:
                return False
        else:
            key, value = re.split(r"==?", term, maxsplit=1)
            if field_value(obj, key) != value:
                return False
    return True


def status_body(code: int, message: str) -> dict[str, Any]:
    reasons = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "AlreadyExists",
               500: "InternalError"}
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reasons.get(code, "Unknown"), "code": code}


# statuses of a created pod, as the kubelet reports them (see FakeApiServer.pod_lifecycle)
PENDING: dict[str, Any] = {"phase": "Pending", "conditions": [
    {"type": "PodScheduled", "status": "True"}]}
RUNNING: dict[str, Any] = {"phase": "Running", "podIP": "10.10.0.11", "conditions": [
    {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}]}


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    """A Pending pod whose container waits for `reason` (ErrImagePull, ImagePullBackOff…)."""
    message = message or f'Back-off pulling image: {reason}'
    return {"phase": "Pending", "containerStatuses": [
        {"name": "iptables", "ready": False, "restartCount": 0,
         "state": {"waiting": {"reason": reason, "message": message}}}]}


def terminated(reason: str, message: str = "", exit_code: int = 128) -> dict[str, Any]:
    """A Failed pod whose container ended (e.g. StartError: its command is not in the image)."""
    return {"phase": "Failed", "containerStatuses": [
        {"name": "iptables", "ready": False, "restartCount": 0,
         "state": {"terminated": {"reason": reason, "message": message,
                                  "exitCode": exit_code}}}]}


def lifecycle(*steps: dict[str, Any]) -> list[dict[str, Any]]:
    return [copy.deepcopy(s) for s in steps]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]            # the last value of each parameter
    headers: dict[str, str]
    raw_query: str = ""              # as sent (repeated parameters such as exec's `command`)
    body: bytes = b""                # what a POST or DELETE sent

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def query_all(self, name: str) -> list[str]:
        """Every value of a query parameter, in order (`command=a&command=b` → [a, b])."""
        return parse_qs(self.raw_query, keep_blank_values=True).get(name, [])


@dataclass
class ExecScript:
    """What a command run through exec does: its output (sent in frames of at most `chunk`
    bytes, stdout and stderr interleaved as given) and its exit code (non-zero: a Failure
    Status with reason NonZeroExitCode, as the kubelet reports it)."""

    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int = 0
    chunk: int = 4096
    message: str | None = None       # a Failure without an exit code (e.g. exec not possible)
    stall: float = 0.0               # seconds of silence after stdout, before the rest
    hang_up: bool = False            # drop the connection after stdout: no status, no close
    pace: float = 0.0                # seconds between two frames (a slow, steady command)

    def frames(self, command: list[str]) -> list[tuple[int, bytes]]:
        out = [(1, self.stdout[i:i + self.chunk]) for i in range(0, len(self.stdout), self.chunk)]
        err = [(2, self.stderr[i:i + self.chunk]) for i in range(0, len(self.stderr), self.chunk)]
        return [*out, *err, (3, json.dumps(self.status(command)).encode())]

    def status(self, command: list[str]) -> dict[str, Any]:
        if self.message is None and self.exit_code == 0:
            return {"metadata": {}, "status": "Success"}
        if self.message is not None:
            return {"metadata": {}, "status": "Failure", "message": self.message,
                    "reason": "InternalError", "code": 500}
        return {"metadata": {}, "status": "Failure",
                "message": f"command terminated with non-zero exit code: error executing "
                           f"command [{' '.join(command)}], exit code {self.exit_code}",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": str(self.exit_code)}]}}


@dataclass
class FakeApiServer:
    """Serve `objects` over HTTPS on 127.0.0.1. Use as a context manager."""

    objects: list[dict[str, Any]]
    cert_dir: Path
    token: str | None = "s3cret"
    version: str = "v1.36.2"
    requests: list[Request] = field(default_factory=list)
    faults: list[tuple[re.Pattern[str], int, str | None]] = field(default_factory=list)
    delays: list[tuple[re.Pattern[str], float]] = field(default_factory=list)
    # answers sent one byte at a time: (path pattern, seconds between bytes, headers too)
    trickles: list[tuple[re.Pattern[str], float, bool]] = field(default_factory=list)
    scripts: dict[tuple[str, str], ExecScript] = field(default_factory=dict)
    command_scripts: dict[tuple[str, str, tuple[str, ...]], ExecScript] = field(
        default_factory=dict)
    protocols: tuple[str, ...] = CHANNEL_PROTOCOLS      # subprotocols it accepts, preferred first
    negotiated: list[str] = field(default_factory=list)  # the subprotocol of each exec session
    # the statuses a created pod goes through, one step per GET of it; the last one stays
    pod_lifecycle: list[dict[str, Any]] = field(default_factory=lambda: lifecycle(PENDING,
                                                                                  RUNNING))
    created: list[dict[str, Any]] = field(default_factory=list)   # pods POSTed, as stored
    deleted: list[str] = field(default_factory=list)              # "ns/name" of pods DELETEd
    expire_continues: int = 0        # this many continue tokens answered 410 Expired, then OK

    def __post_init__(self) -> None:
        self._by_kind: dict[str, list[dict[str, Any]]] = {}
        for obj in self.objects:
            self._by_kind.setdefault(obj["kind"], []).append(obj)
        self._lock = threading.Lock()
        self._steps: dict[tuple[str, str], int] = {}     # created pod → its lifecycle step

    # --- control -------------------------------------------------------------------------

    def fail(self, path_regex: str, status: int, method: str | None = None) -> None:
        """Answer `status` (with a Status body) to every request whose path matches (only
        to requests of `method` when given: "POST" fails creation, not listing)."""
        self.faults.append((re.compile(path_regex), status, method))

    def slow(self, path_regex: str, seconds: float) -> None:
        """Wait `seconds` before answering requests whose path matches."""
        self.delays.append((re.compile(path_regex), seconds))

    def trickle(self, path_regex: str, interval: float, headers: bool = False) -> None:
        """Send the answer to matching requests one byte every `interval` seconds: the body,
        or (`headers`) the status line and headers too. No single read ever waits long."""
        self.trickles.append((re.compile(path_regex), interval, headers))

    def trickle_for(self, path: str) -> tuple[float, bool] | None:
        return next(((interval, headers) for pattern, interval, headers in self.trickles
                     if pattern.search(path)), None)

    def on_exec(self, namespace: str, pod: str, script: ExecScript,
                command: tuple[str, ...] | None = None) -> None:
        """What any command (or only `command`) exec'd in `namespace/pod` does (the pod must be
        among the objects, or created; exec in a pod without a script prints nothing and
        succeeds). `pod` may be a glob (`svctrace-debug-node2-*`) for pods whose name is not
        known in advance."""
        if command is not None:
            self.command_scripts[(namespace, pod, command)] = script
        else:                        # every command: it replaces per-command scripts too
            self.scripts[(namespace, pod)] = script
            for key in [k for k in self.command_scripts if k[:2] == (namespace, pod)]:
                del self.command_scripts[key]

    def script_for(self, namespace: str, pod: str,
                   command: tuple[str, ...] = ()) -> ExecScript:
        for (ns, pattern, cmd), script in self.command_scripts.items():
            if ns == namespace and cmd == command and fnmatch.fnmatchcase(pod, pattern):
                return script
        if (namespace, pod) in self.scripts:
            return self.scripts[(namespace, pod)]
        return next((s for (ns, pattern), s in self.scripts.items()
                     if ns == namespace and fnmatch.fnmatchcase(pod, pattern)), ExecScript())

    def pod_exists(self, namespace: str, name: str) -> bool:
        with self._lock:
            return any(o["metadata"]["name"] == name and o["metadata"].get("namespace") ==
                       namespace for o in self._by_kind.get("Pod", []))

    @property
    def exec_requests(self) -> list[Request]:
        return [r for r in self.requests if EXEC_ROUTE.match(r.path)]

    def __enter__(self) -> FakeApiServer:
        cert, key = make_certificate(self.cert_dir)
        handler = type("Handler", (_Handler,), {"api": self})
        self.httpd = _Server(("127.0.0.1", 0), handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.httpd.server_address[1]}"

    def kubeconfig(self, path: Path, namespace: str | None = None, context: str = "rig",
                   token: str | None = None, ca: bool = True) -> Path:
        """Write a kubeconfig for this server; `ca=False` leaves the CA out (TLS fails)."""
        cluster: dict[str, Any] = {"server": self.url}
        if ca:
            pem = (self.cert_dir / "tls.crt").read_bytes()
            cluster["certificate-authority-data"] = base64.b64encode(pem).decode()
        ctx: dict[str, Any] = {"cluster": "rig", "user": "rig"}
        if namespace:
            ctx["namespace"] = namespace
        config = {"apiVersion": "v1", "kind": "Config", "current-context": context,
                  "clusters": [{"name": "rig", "cluster": cluster}],
                  "contexts": [{"name": context, "context": ctx}],
                  "users": [{"name": "rig", "user": {"token": token or self.token or "x"}}]}
        path.write_text(json.dumps(config))
        return path

    # --- answering -----------------------------------------------------------------------

    def record(self, req: Request) -> None:
        with self._lock:
            self.requests.append(req)

    def injected(self, req: Request) -> tuple[int, dict[str, Any]] | None:
        """What every request meets first: delays, injected faults, the bearer token."""
        for pattern, seconds in self.delays:
            if pattern.search(req.path):
                time.sleep(seconds)
        for pattern, status, method in self.faults:
            if pattern.search(req.path) and method in (None, req.method):
                return status, status_body(status, f"injected {status} for {req.path}")
        if self.token and req.headers.get("authorization") != f"Bearer {self.token}":
            return 401, status_body(401, "Unauthorized")
        return None

    def answer(self, req: Request) -> tuple[int, dict[str, Any]]:
        refused = self.injected(req)
        if refused is not None:
            return refused
        if req.path.rstrip("/") == "/version":      # the client asks for /version/
            return 200, {"major": "1", "minor": "36", "gitVersion": self.version}
        route = ROUTE.match(req.path)
        if not route or route["plural"] not in PLURALS:
            return 404, status_body(404, "the server could not find the requested resource")
        if req.method == "POST" and route["plural"] == "pods" and route["ns"] \
                and not route["name"]:
            return self._create_pod(route["ns"], req)
        if req.method == "DELETE" and route["plural"] == "pods" and route["ns"] \
                and route["name"]:
            return self._delete_pod(route["ns"], route["name"])
        if req.method != "GET":
            return 405, status_body(405, "the server does not allow this method")
        return self._resource(route["ns"], route["plural"], route["name"], req.query)

    def _create_pod(self, ns: str, req: Request) -> tuple[int, dict[str, Any]]:
        try:
            pod = req.json()
            name = pod["metadata"]["name"]
        except (ValueError, TypeError, KeyError):
            return 400, status_body(400, "the body of the request was in an unknown format")
        if self.pod_exists(ns, name):
            return 409, status_body(409, f'pods "{name}" already exists')
        pod = copy.deepcopy(pod)
        pod["metadata"].update(namespace=ns, uid=f"uid-{len(self.created)}",
                               creationTimestamp="2026-01-01T00:00:00Z")
        pod["status"] = copy.deepcopy(self.pod_lifecycle[0])
        with self._lock:
            self._by_kind.setdefault("Pod", []).append(pod)
            self._steps[(ns, name)] = 0
            self.created.append(pod)
        return 201, pod

    def _delete_pod(self, ns: str, name: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            pods = self._by_kind.get("Pod", [])
            hit = next((o for o in pods if o["metadata"]["name"] == name
                        and o["metadata"].get("namespace") == ns), None)
            if hit is None:
                return 404, status_body(404, f'pods "{name}" not found')
            pods.remove(hit)
            self.deleted.append(f"{ns}/{name}")
        return 200, {**hit, "metadata": {**hit["metadata"],
                                         "deletionTimestamp": "2026-01-01T00:00:01Z"}}

    def _advance(self, ns: str, name: str, pod: dict[str, Any]) -> None:
        """A GET of a created pod: its next lifecycle step."""
        with self._lock:
            if (ns, name) not in self._steps:
                return
            step = min(self._steps[(ns, name)] + 1, len(self.pod_lifecycle) - 1)
            self._steps[(ns, name)] = step
            pod["status"] = copy.deepcopy(self.pod_lifecycle[step])

    def exec_refusal(self, req: Request, ns: str, pod: str) -> tuple[int, dict[str, Any]] | None:
        """The error answer to an exec upgrade request, or None to go ahead with it."""
        refused = self.injected(req)
        if refused is not None:
            return refused
        if not self.pod_exists(ns, pod):
            return 404, status_body(404, f'pods "{pod}" not found')
        if req.headers.get("upgrade", "").lower() != "websocket":
            return 400, status_body(400, "Upgrade request required")
        if not req.query_all("command"):
            return 400, status_body(400, "you must specify at least 1 command")
        offered = req.headers.get("sec-websocket-protocol", "")
        if offered and self.choose_protocol(offered) is None:
            return 400, status_body(400, f"unable to upgrade: no supported subprotocol in "
                                         f"{offered!r}")
        return None

    def choose_protocol(self, offered: str) -> str | None:
        wanted = [p.strip() for p in offered.split(",") if p.strip()]
        return next((p for p in self.protocols if p in wanted), None)

    def _resource(self, ns: str | None, plural: str, name: str | None,
                  query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        kind = PLURALS[plural]
        objs = self._namespaces() if kind == "Namespace" else self._by_kind.get(kind, [])
        if ns is not None:
            objs = [o for o in objs if o["metadata"].get("namespace") == ns]
        if name is not None:
            hit = next((o for o in objs if o["metadata"]["name"] == name), None)
            if hit is None:
                return 404, status_body(404, f'{plural} "{name}" not found')
            if kind == "Pod" and ns is not None:
                self._advance(ns, name, hit)
            return 200, hit
        if query.get("labelSelector") or query.get("fieldSelector"):
            objs = [o for o in objs if match_labels(query.get("labelSelector", ""),
                                                    o["metadata"].get("labels") or {})
                    and match_fields(query.get("fieldSelector", ""), o)]
        meta: dict[str, Any] = {"resourceVersion": "4242"}
        if query.get("continue"):
            expired = self._continue_expired()
            if expired is not None:
                return expired
        if query.get("limit"):
            objs, rest = paginate(objs, int(query["limit"]), query.get("continue", ""))
            if rest:
                meta.update(**{"continue": rest, "remainingItemCount": rest_count(rest)})
        items = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in objs]
        return 200, {"kind": f"{kind}List", "apiVersion": "v1", "metadata": meta,
                     "items": items}

    def _continue_expired(self) -> tuple[int, dict[str, Any]] | None:
        """410 Gone for a continue token, as kube-apiserver answers once etcd compacted the
        revision the list started at (`expire_continues` times)."""
        with self._lock:
            if self.expire_continues <= 0:
                return None
            self.expire_continues -= 1
        body = status_body(410, "The provided continue parameter is too old to display a "
                                "consistent list result. You can start a new list without the "
                                "continue parameter.")
        return 410, {**body, "reason": "Expired"}

    def _namespaces(self) -> list[dict[str, Any]]:
        names = sorted({o["metadata"]["namespace"] for o in self.objects
                        if o["metadata"].get("namespace")})
        return [{"kind": "Namespace", "metadata": {"name": n}} for n in names]


def paginate(objs: list[dict[str, Any]], limit: int,
             token: str) -> tuple[list[dict[str, Any]], str]:
    """One page of a chunked LIST: `limit` objects from the offset the continue token holds,
    and the token of the next page ("" after the last). Tokens are opaque to clients, as the
    API server's are (base64 JSON)."""
    start = json.loads(base64.b64decode(token))["start"] if token else 0
    page = objs[start:start + limit]
    end = start + len(page)
    if end >= len(objs):
        return page, ""
    nxt = base64.b64encode(json.dumps({"start": end, "total": len(objs)}).encode()).decode()
    return page, nxt


def rest_count(token: str) -> int:
    state = json.loads(base64.b64decode(token))
    return int(state["total"]) - int(state["start"])


def ws_frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked websocket frame (server to client)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def read_frame(rfile: Any) -> tuple[int | None, bytes]:
    """(opcode, unmasked payload) of the next frame; (None, b"") at EOF."""
    head = rfile.read(2)
    if len(head) < 2:
        return None, b""
    opcode, n = head[0] & 0x0F, head[1] & 0x7F
    if n == 126:
        n = struct.unpack("!H", rfile.read(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", rfile.read(8))[0]
    mask = rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
    data = rfile.read(n)
    return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys
        if not isinstance(sys.exc_info()[1], ssl.SSLError | ConnectionError):
            super().handle_error(request, client_address)   # TLS tests abort handshakes


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True     # else Nagle + delayed ACK cost 40 ms per request
    api: FakeApiServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        req = self._request("GET")
        if EXEC_ROUTE.match(req.path):
            self._exec(req)
            return
        trickle = self.api.trickle_for(req.path)
        if trickle is not None:
            self._send_trickling(*self.api.answer(req), *trickle)
            return
        self._send_json(*self.api.answer(req))

    def do_POST(self) -> None:  # noqa: N802 - exec (kubectl POSTs it) and creating pods
        req = self._request("POST")
        if EXEC_ROUTE.match(req.path):
            self._exec(req)
            return
        self._send_json(*self.api.answer(req))

    def do_DELETE(self) -> None:  # noqa: N802 - deleting pods
        self._send_json(*self.api.answer(self._request("DELETE")))

    def _request(self, method: str) -> Request:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length and not EXEC_ROUTE.match(parts.path) else b""
        req = Request(method, parts.path, query, {k.lower(): v for k, v in self.headers.items()},
                      parts.query, body)
        self.api.record(req)
        return req

    def _send_json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_trickling(self, status: int, body: dict[str, Any], interval: float,
                        headers: bool) -> None:
        data = json.dumps(body).encode()
        head = (f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n\r\n").encode()
        self.close_connection = True
        if not headers:
            self.wfile.write(head)
            self.wfile.flush()
        try:
            for byte in (head if headers else b"") + data:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(interval)
        except OSError:                  # the client gave up
            return

    # --- exec over a websocket (RFC 6455) ------------------------------------------------

    def _exec(self, req: Request) -> None:
        route = EXEC_ROUTE.match(req.path)
        assert route is not None
        ns, pod = route["ns"], route["pod"]
        refusal = self.api.exec_refusal(req, ns, pod)
        if refusal is not None:
            self._send_json(*refusal)
            return
        protocol = self.api.choose_protocol(req.headers.get("sec-websocket-protocol", ""))
        self.api.negotiated.append(protocol or "")
        key = req.headers.get("sec-websocket-key", "")
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        if protocol:
            self.send_header("Sec-WebSocket-Protocol", protocol)
        self.end_headers()
        self.close_connection = True
        command = req.query_all("command")
        script = self.api.script_for(ns, pod, tuple(command))
        status = script.status(command)
        stdout_done = False
        for channel, payload in script.frames(command):
            time.sleep(script.pace)
            if channel != 1 and not stdout_done:
                stdout_done = True
                time.sleep(script.stall)
                if script.hang_up:
                    self.connection.close()
                    return
            if channel == 3 and protocol not in ("v4.channel.k8s.io", "v5.channel.k8s.io"):
                # before v4 the error channel carries only a failure's text
                if status["status"] == "Success":
                    continue
                payload = status["message"].encode()
            try:
                self.wfile.write(ws_frame(0x2, bytes([channel]) + payload))
            except OSError:              # the client gave up
                return
        self.wfile.write(ws_frame(0x8, struct.pack("!H", 1000)))
        self._drain_until_close()

    def _drain_until_close(self) -> None:
        """Read the client's frames (masked) until its close frame, EOF or 2 s of silence."""
        self.connection.settimeout(2.0)
        try:
            while True:
                opcode, _ = read_frame(self.rfile)
                if opcode in (None, 0x8):
                    return
        except OSError:                  # timeouts included
            return

    def log_message(self, *args: Any) -> None:
        pass
