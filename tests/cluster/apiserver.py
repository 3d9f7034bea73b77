"""A stand-in Kubernetes API server for tests and the benchmark.

Real HTTPS (a self-signed certificate made with the openssl CLI), HTTP/1.1 keep-alive, and
real-format objects: list items come back without kind/apiVersion, errors as Status objects,
as kube-apiserver sends them. Label and field selectors are URL-decoded and applied. Every
request is recorded, and any path can be made to fail (401/403/404/500…) or to be slow.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

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


def match_fields(selector: str, obj: dict[str, Any]) -> bool:
    for term in filter(None, selector.split(",")):
        key, value = term.split("=", 1)
        if key == "metadata.name" and obj["metadata"]["name"] != value:
            return False
        if key == "metadata.namespace" and obj["metadata"].get("namespace") != value:
            return False
    return True


def status_body(code: int, message: str) -> dict[str, Any]:
    reasons = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 500: "InternalError"}
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reasons.get(code, "Unknown"), "code": code}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class FakeApiServer:
    """Serve `objects` over HTTPS on 127.0.0.1. Use as a context manager."""

    objects: list[dict[str, Any]]
    cert_dir: Path
    token: str | None = "s3cret"
    version: str = "v1.36.2"
    requests: list[Request] = field(default_factory=list)
    faults: list[tuple[re.Pattern[str], int]] = field(default_factory=list)
    delays: list[tuple[re.Pattern[str], float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_kind: dict[str, list[dict[str, Any]]] = {}
        for obj in self.objects:
            self._by_kind.setdefault(obj["kind"], []).append(obj)
        self._lock = threading.Lock()

    # --- control -------------------------------------------------------------------------

    def fail(self, path_regex: str, status: int) -> None:
        """Answer `status` (with a Status body) to every request whose path matches."""
        self.faults.append((re.compile(path_regex), status))

    def slow(self, path_regex: str, seconds: float) -> None:
        """Wait `seconds` before answering requests whose path matches."""
        self.delays.append((re.compile(path_regex), seconds))

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

    def answer(self, req: Request) -> tuple[int, dict[str, Any]]:
        for pattern, seconds in self.delays:
            if pattern.search(req.path):
                time.sleep(seconds)
        for pattern, status in self.faults:
            if pattern.search(req.path):
                return status, status_body(status, f"injected {status} for {req.path}")
        if self.token and req.headers.get("authorization") != f"Bearer {self.token}":
            return 401, status_body(401, "Unauthorized")
        if req.path.rstrip("/") == "/version":      # the client asks for /version/
            return 200, {"major": "1", "minor": "36", "gitVersion": self.version}
        route = ROUTE.match(req.path)
        if not route or route["plural"] not in PLURALS:
            return 404, status_body(404, "the server could not find the requested resource")
        return self._resource(route["ns"], route["plural"], route["name"], req.query)

    def _resource(self, ns: str | None, plural: str, name: str | None,
                  query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        kind = PLURALS[plural]
        objs = self._namespaces() if kind == "Namespace" else self._by_kind.get(kind, [])
        objs = [o for o in objs if ns is None or o["metadata"].get("namespace") == ns]
        if name is not None:
            hit = next((o for o in objs if o["metadata"]["name"] == name), None)
            if hit is None:
                return 404, status_body(404, f'{plural} "{name}" not found')
            return 200, hit
        objs = [o for o in objs if match_labels(query.get("labelSelector", ""),
                                                o["metadata"].get("labels") or {})
                and match_fields(query.get("fieldSelector", ""), o)]
        if query.get("limit"):
            objs = objs[: int(query["limit"])]
        items = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in objs]
        return 200, {"kind": f"{kind}List", "apiVersion": "v1",
                     "metadata": {"resourceVersion": "4242"}, "items": items}

    def _namespaces(self) -> list[dict[str, Any]]:
        names = sorted({o["metadata"]["namespace"] for o in self.objects
                        if o["metadata"].get("namespace")})
        return [{"kind": "Namespace", "metadata": {"name": n}} for n in names]


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
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        req = Request("GET", parts.path, query, {k.lower(): v for k, v in self.headers.items()})
        self.api.record(req)
        status, body = self.api.answer(req)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass
