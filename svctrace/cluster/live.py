"""The live cluster: with node_exec and lightimport, the only modules that import kubernetes
(lazily, inside functions).

Raw JSON is fetched (`_preload_content=False`) and handed to the same dict converter the
snapshot uses; the client's own model deserialisation is slow and never used. Every error of
the client, urllib3 or the kubeconfig is translated here into a SvctraceError.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from svctrace.cluster import service_not_found
from svctrace.cluster.convert import (
    ConversionError,
    assemble_view,
    endpointslice_from_dict,
    node_from_dict,
    nodes_needed,
    pod_from_dict,
    service_from_dict,
)
from svctrace.cluster.deadline import TimedOut, bounded
from svctrace.cluster.kubeconfig import (
    check_kubeconfig_file,
    context_name,
    context_names,
    exec_stanza,
    kubeconfig_paths,
    user_with_credentials,
)
from svctrace.cluster.lightimport import import_client_light
from svctrace.cluster.names import check_name, redact
from svctrace.errors import ClusterError, SvctraceError
from svctrace.model.cluster import (
    SERVICE_NAME_LABEL,
    ServiceView,
    selector_matches,
    selector_text,
)

DEFAULT_TIMEOUT = 5.0
# the whole command's cluster work ends within OVERALL_REQUESTS request timeouts (at least
# OVERALL_MIN seconds): a backstop for commands that make many requests on a slow cluster
OVERALL_REQUESTS = 12
OVERALL_MIN = 60.0
MAX_BODY = 512 << 20            # an API answer larger than this is not one we can use
INSECURE = ("insecure-skip-tls-verify is set: the API server's certificate is not checked")
NEAR_MISS_POD_LIMIT = 2000      # pods read from the namespace when a selector matches none
NEEDED = "explain needs get/list on services, endpointslices, pods and nodes"
SA_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
API_VERSIONS = {"services": ("v1", "Service"), "pods": ("v1", "Pod"), "nodes": ("v1", "Node"),
                "endpointslices": ("discovery.k8s.io/v1", "EndpointSlice")}


@dataclass
class Connection:
    """An API client bound to one context, with the namespace that context defaults to."""

    api_client: Any
    server: str
    context: str | None
    namespace: str
    timeout: float
    deadline: float = math.inf            # time.monotonic() by which everything must end
    notes: list[str] = field(default_factory=list)

    # --- requests ------------------------------------------------------------------------

    def request(self, verb: str, resource: str, namespace: str | None, call: Any, *args: Any,
                allow: tuple[int, ...] = (), **kwargs: Any) -> Any:
        """Run one API call and return its JSON body; None when its status is in `allow`."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError
        seconds = self.budget()
        try:
            with bounded(seconds):
                resp = call(*args, _preload_content=False, _request_timeout=seconds, **kwargs)
                data = read_body(resp, f"{verb} {resource}", self.server)
            return json.loads(data)
        except TimedOut:
            raise self.timeout_error(seconds) from None
        except ApiException as err:
            if err.status in allow:
                return None
            raise self._api_error(err, verb, resource, namespace) from None
        except HTTPError as err:
            raise self._transport_error(err) from None
        except ValueError:
            raise ClusterError(f"the API server at {self.server} sent invalid JSON "
                               f"for {verb} {resource}") from None

    def _api_error(self, err: Any, verb: str, resource: str, ns: str | None) -> ClusterError:
        where = f' in namespace "{ns}"' if ns else ""
        if err.status == 0:
            return self._transport_error(err)
        if err.status == 401:
            return ClusterError(f"the API server at {self.server} rejected the credentials "
                                f"(401 Unauthorized)", "log in again or refresh the token "
                                "of this context in your kubeconfig")
        if err.status == 403:
            return ClusterError(f"access denied: cannot {verb} {resource}{where} "
                                f"(403 Forbidden)", f"{NEEDED}; check with 'kubectl auth "
                                f"can-i {verb} {resource}{' -n ' + ns if ns else ''}'")
        return ClusterError(f"the API server answered {err.status} {err.reason or ''} to "
                            f"{verb} {resource}{where}".replace("  ", " "))

    def _transport_error(self, err: Any) -> ClusterError:
        text = f"{type(err).__name__} {err} {getattr(err, 'reason', '')}"
        if "SSL" in text or "CERTIFICATE" in text:
            detail = "certificate verify failed" if "CERTIFICATE_VERIFY" in text else "handshake"
            return ClusterError(f"TLS failure talking to {self.server} ({detail})",
                                "check certificate-authority(-data) of the cluster in the "
                                "kubeconfig")
        if "timed out" in text.lower() or "Timeout" in text:
            return self.timeout_error(self.timeout)
        if "refused" in text.lower():
            return ClusterError(f"cannot reach the API server at {self.server}: connection "
                                "refused", "is the cluster running? check the context's server")
        return ClusterError(f"cannot reach the API server at {self.server}: "
                            f"{type(getattr(err, 'reason', None) or err).__name__}")

    def timeout_error(self, seconds: float) -> ClusterError:
        """The error of a request that did not end within `seconds`."""
        if seconds < self.timeout:
            return self.overall_error()
        return ClusterError(f"the API server at {self.server} did not answer within "
                            f"{seconds:g}s", "check the network, or raise --request-timeout")

    # --- the time budget ---------------------------------------------------------------

    def budget(self) -> float:
        """Seconds the next request may take: the request timeout, or less when the overall
        deadline is nearer; ClusterError when nothing is left."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.overall_error()
        return min(self.timeout, left)

    def overall_error(self) -> ClusterError:
        return ClusterError(f"the cluster work did not end within its overall limit (the API "
                            f"server at {self.server})", "the limit is "
                            f"{OVERALL_REQUESTS} times --request-timeout, at least "
                            f"{OVERALL_MIN:g}s: raise --request-timeout")

    # --- what explain and snapshot need --------------------------------------------------

    def core(self) -> Any:
        from kubernetes.client.api.core_v1_api import CoreV1Api
        return CoreV1Api(self.api_client)

    def list_raw(self, resource: str, namespace: str | None, **kwargs: Any) -> list[dict]:
        """LIST one resource (in a namespace, or everywhere when None); items get their
        apiVersion/kind back (the API leaves them out of list items)."""
        api_version, kind = API_VERSIONS[resource]
        if namespace:
            check_name("namespace", namespace)
        body = self.request("list", resource, namespace, self._list_call(resource, namespace),
                            *([namespace] if namespace else []), **kwargs)
        return [{"apiVersion": api_version, "kind": kind, **item}
                for item in body.get("items") or []]

    def _list_call(self, resource: str, namespace: str | None) -> Any:
        if resource == "endpointslices":
            from kubernetes.client.api.discovery_v1_api import DiscoveryV1Api
            api = DiscoveryV1Api(self.api_client)
            return (api.list_namespaced_endpoint_slice if namespace
                    else api.list_endpoint_slice_for_all_namespaces)
        core = self.core()
        if resource == "nodes":
            return core.list_node
        singular = resource[:-1]
        return getattr(core, f"list_namespaced_{singular}" if namespace
                       else f"list_{singular}_for_all_namespaces")

    def server_version(self) -> str | None:
        from kubernetes.client.api.version_api import VersionApi
        body = self.request("get", "version", None, VersionApi(self.api_client).get_code)
        return body.get("gitVersion") if isinstance(body, dict) else None

    def fetch_service_view(self, name: str, namespace: str) -> ServiceView:
        """GET the Service, LIST its EndpointSlices, LIST the pods its selector matches, LIST
        the nodes: four requests. When the selector matches nothing, the namespace's pods
        (for near misses) replace the nodes."""
        svc = _convert(service_from_dict, self.read_service_raw(name, namespace))
        slices, pods, notes = [], [], []
        if not svc.is_external_name:
            slices = self.list_raw("endpointslices", namespace,
                                   label_selector=f"{SERVICE_NAME_LABEL}={name}")
        if svc.selector and not svc.is_external_name:
            pods = self.list_raw("pods", namespace, label_selector=selector_text(svc.selector))
            if not pods:
                pods = self.list_raw("pods", namespace, limit=NEAR_MISS_POD_LIMIT)
        pod_objs = [_convert(pod_from_dict, p) for p in pods]
        nodes = None
        if nodes_needed(svc, [p for p in pod_objs if selector_matches(svc.selector, p.labels)]):
            nodes = self._nodes_or_none()
            if nodes is None:
                notes.append("nodes are not readable (403): node readiness and the traffic-"
                             "policy checks use only the nodes seen on pods and endpoints")
        return assemble_view(svc, [_convert(endpointslice_from_dict, s) for s in slices],
                             pod_objs, nodes, source="live", notes=(*self.notes, *notes))

    def read_service_raw(self, name: str, namespace: str) -> dict[str, Any]:
        """GET one Service as a dict; NotFoundError with near names when it does not exist."""
        check_name("Service", name)
        check_name("namespace", namespace)
        raw = self.request("get", "services", namespace, self.core().read_namespaced_service,
                           name, namespace, allow=(404,))
        if raw is None:
            raise self._not_found(name, namespace)
        return raw

    def _nodes_or_none(self) -> list[Any] | None:
        body = self.request("list", "nodes", None, self.core().list_node, allow=(403,))
        if body is None:
            return None
        return [_convert(node_from_dict, n) for n in body.get("items") or []]

    def _not_found(self, name: str, namespace: str) -> SvctraceError:
        core = self.core()
        body = self.request("list", "services", namespace, core.list_namespaced_service,
                            namespace, allow=(403,)) or {}
        here = [s["metadata"]["name"] for s in body.get("items") or []]
        other = self.request("list", "services", None, core.list_service_for_all_namespaces,
                             field_selector=f"metadata.name={name}", allow=(403,)) or {}
        spaces = [s["metadata"].get("namespace", "") for s in other.get("items") or []]
        return service_not_found(name, namespace, here, spaces)


def read_body(resp: Any, what: str, server: str, limit: int = MAX_BODY) -> bytes:
    """The body of a response, read in pieces up to `limit` bytes."""
    chunks, size = [], 0
    while chunk := resp.read(1 << 20):
        size += len(chunk)
        if size > limit:
            resp.release_conn()
            raise ClusterError(f"the API server at {server} sent more than {limit >> 20} MiB "
                               f"for {what}; refused")
        chunks.append(chunk)
    return b"".join(chunks)


def overall_deadline(timeout: float) -> float:
    """The time.monotonic() by which a command's cluster work must end."""
    return time.monotonic() + max(OVERALL_MIN, OVERALL_REQUESTS * timeout)


def _convert(converter: Any, raw: Any) -> Any:
    try:
        return converter(raw)
    except ConversionError as err:
        raise ClusterError(f"unexpected object from the API server: {err}") from None


def connect(kubeconfig: str | None = None, context: str | None = None,
            timeout: float = DEFAULT_TIMEOUT, deadline: float | None = None) -> Connection:
    """A Connection as kubectl would make it: kubeconfig files and context, or the in-cluster
    service account when there is no kubeconfig and we run in a pod. `deadline` (a
    time.monotonic() value, e.g. overall_deadline(timeout)) ends the whole of its work; None:
    only each request is bounded (doctor's work grows with the cluster)."""
    deadline = math.inf if deadline is None else deadline
    import_client_light()
    paths = kubeconfig_paths(kubeconfig)
    existing = [p for p in paths if os.path.isfile(p)]
    if not existing and not kubeconfig and os.environ.get("KUBERNETES_SERVICE_HOST"):
        return _in_cluster(timeout, deadline)
    if not existing:
        raise ClusterError(f"no kubeconfig found (looked at {', '.join(paths)})",
                           "set KUBECONFIG or pass --kubeconfig, or read objects from a file "
                           "with --snapshot FILE")
    from kubernetes.client.configuration import Configuration
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.kube_config import KubeConfigLoader
    merged = _merged_kubeconfig(existing)
    name = context_name(merged, context)
    _run_exec_plugin(merged, name, min(timeout, deadline - time.monotonic()))
    try:
        loader = KubeConfigLoader(config_dict=merged, active_context=name)
        cfg = Configuration()
        loader.load_and_set(cfg)
    except (ConfigException, ValueError, KeyError, TypeError, OSError) as err:
        raise ClusterError(redact(f"kubeconfig context {name!r} is unusable: {err}")) from None
    ctx = (loader.current_context or {}).get("context") or {}
    return _connection(cfg, name, ctx.get("namespace") or "default", timeout, deadline)


def _merged_kubeconfig(paths: list[str]) -> Any:
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.kube_config import KubeConfigMerger
    for path in paths:
        check_kubeconfig_file(path)
    try:
        return KubeConfigMerger(os.pathsep.join(paths)).config
    except (ConfigException, OSError, ValueError) as err:
        raise ClusterError(redact(f"kubeconfig {', '.join(paths)} is not readable: "
                                  f"{str(err).splitlines()[0]}")) from None
    except Exception as err:  # yaml.YAMLError and friends: a broken file, not our bug
        raise ClusterError(f"kubeconfig {', '.join(paths)} is not valid YAML "
                           f"({type(err).__name__})") from None


def _run_exec_plugin(merged: Any, context: str, seconds: float) -> None:
    """When the context's user has an `exec` credential plugin, run it (bounded, see
    credentials.py) and put what it answers in place of the stanza, so that the client
    never runs the plugin itself."""
    from kubernetes.config.kube_config import ConfigNode

    from svctrace.cluster.credentials import run_exec_plugin
    found = exec_stanza(merged.value, context)
    if found is None:
        return
    index, plugin, entry, path = found
    if seconds <= 0:
        raise ClusterError(f"{plugin.label} was not run: no time left")
    users = merged.value["users"]
    users[index] = ConfigNode(getattr(users[index], "name", ""),
                              user_with_credentials(entry, run_exec_plugin(plugin, seconds)),
                              path)


def _in_cluster(timeout: float, deadline: float) -> Connection:
    from kubernetes.client.configuration import Configuration
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.incluster_config import load_incluster_config
    cfg = Configuration()
    try:
        load_incluster_config(client_configuration=cfg)
    except ConfigException as err:
        raise ClusterError(redact(f"in-cluster configuration is unusable: {err}")) from None
    try:
        with open(SA_NAMESPACE, encoding="utf-8") as f:
            namespace = f.read().strip() or "default"
    except OSError:
        namespace = "default"
    return _connection(cfg, None, namespace, timeout, deadline)


def _connection(cfg: Any, context: str | None, namespace: str, timeout: float,
                deadline: float) -> Connection:
    from kubernetes.client.api_client import ApiClient
    cfg.retries = 0          # one try: a timeout must take --request-timeout, not 4 times it
    conn = Connection(ApiClient(configuration=cfg), redact(cfg.host), context, namespace,
                      timeout, deadline)
    _library_warnings_as_notes()
    if not cfg.verify_ssl:
        conn.notes.append(INSECURE)
    return conn


def _library_warnings_as_notes() -> None:
    """urllib3's InsecureRequestWarning (two per request) is replaced by the INSECURE note;
    any other warning of the libraries becomes one `svctrace: warning:` line, once."""
    import warnings

    from urllib3.exceptions import InsecureRequestWarning
    warnings.filterwarnings("ignore", category=InsecureRequestWarning)
    if getattr(warnings.showwarning, "svctrace", False):
        return
    previous, seen = warnings.showwarning, set()

    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
             line: Any = None) -> None:
        if not any(f"{os.sep}{lib}{os.sep}" in filename
                   for lib in ("urllib3", "kubernetes", "websocket")):
            previous(message, category, filename, lineno, file, line)
            return
        text = (str(message).strip().splitlines() or [category.__name__])[0]
        if text not in seen:
            seen.add(text)
            sys.stderr.write(f"svctrace: warning: {redact(text)[:200]}\n")
    show.svctrace = True  # type: ignore[attr-defined]
    warnings.showwarning = show


def load_live_view(name: str, namespace: str | None, context: str | None,
                   kubeconfig: str | None, timeout: float = DEFAULT_TIMEOUT,
                   deadline: float | None = None) -> ServiceView:
    """The ServiceView of one Service from the live cluster (namespace None: the context's)."""
    check_name("Service", name)
    if namespace:
        check_name("namespace", namespace)
    conn = connect(kubeconfig, context, timeout, deadline)
    return conn.fetch_service_view(name, namespace or conn.namespace)


def list_names(kind: str, namespace: str | None = None, context: str | None = None,
               kubeconfig: str | None = None, timeout: float = 1.0) -> list[str]:
    """Names for shell completion: kind is services (in `namespace`, else the context's),
    namespaces, contexts or nodes. Never raises: returns [] when they cannot be read. All
    of it, a credential plugin included, ends within 80 % of `timeout`: a plugin is stopped
    and reaped before the caller (which may os._exit) gives up."""
    deadline = time.monotonic() + timeout * 0.8
    import_client_light()
    try:
        if kind == "contexts":
            existing = [p for p in kubeconfig_paths(kubeconfig) if os.path.isfile(p)]
            return context_names(_merged_kubeconfig(existing)) if existing else []
        conn = connect(kubeconfig, context, timeout, deadline)
        if kind == "services":
            items = conn.list_raw("services", namespace or conn.namespace)
        elif kind in ("nodes", "namespaces"):
            core = conn.core()
            call = core.list_node if kind == "nodes" else core.list_namespace
            items = (conn.request("list", kind, None, call) or {}).get("items") or []
        else:
            return []
        return sorted(i["metadata"]["name"] for i in items)
    except (SvctraceError, KeyError, TypeError):
        return []
