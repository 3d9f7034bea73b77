"""Kubeconfig exec credential plugins (`users[].user.exec`), run by svctrace itself.

The kubernetes client runs a plugin with `communicate()` and no time limit, logs its failure
as a raw `ERROR:root:exec: …` line and goes on without credentials (a misleading 401 follows).
Here a plugin gets the time left of the request budget; its output is bounded; it runs in a
session of its own and is killed with everything it started, and reaped, on every path —
success, failure, timeout, Ctrl-C. Should svctrace die first (a TAB given up on exits with
os._exit; a SIGKILL), the kernel signals a small sh that runs the plugin (PR_SET_PDEATHSIG),
and the sh kills the plugin's whole process group: what the plugin started dies with it.
Its failures are ClusterErrors naming it.

The protocol is client-go's (client.authentication.k8s.io, "exec" in
staging/src/k8s.io/client-go/plugin/pkg/client/auth/exec): KUBERNETES_EXEC_INFO holds an
ExecCredential with `spec.interactive` (always false: svctrace never hands its terminal to a
plugin), the plugin prints one with `status.token`, or `status.clientCertificateData` and
`status.clientKeyData`.
"""

from __future__ import annotations

import base64
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from svctrace.errors import ClusterError

MAX_OUTPUT = 1 << 20              # what a plugin may print: a token or a certificate, not more
PR_SET_PDEATHSIG = 1
# the plugin's keeper: on SIGTERM (svctrace died) it kills its process group, the plugin's
# children included; otherwise it exits with the plugin's status
KEEPER = 'trap "kill -KILL 0" TERM; "$0" "$@" & wait $!'


@dataclass(frozen=True)
class ExecPlugin:
    """One `exec` stanza of a kubeconfig user."""

    user: str
    command: str
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    api_version: str
    install_hint: str | None
    cluster: dict[str, Any] | None        # given to the plugin with provideClusterInfo

    @property
    def label(self) -> str:
        return f'the credential plugin "{os.path.basename(self.command)}" of user "{self.user}"'


def exec_plugin(user: str, raw: Any, base_dir: str, cluster: dict[str, Any]) -> ExecPlugin:
    """The ExecPlugin of a user's `exec` stanza; ClusterError when the stanza is malformed.
    A command with a path separator is relative to the kubeconfig's directory (client-go)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("command"), str) \
            or not raw["command"] or not isinstance(raw.get("apiVersion"), str):
        raise ClusterError(f'the exec credential plugin of user "{user}" needs a command and '
                           "an apiVersion", "see users[].user.exec in the kubeconfig")
    command = raw["command"]
    if os.sep in command and not os.path.isabs(command):
        command = os.path.join(base_dir, command)
    args = raw.get("args") or []
    env = raw.get("env") or []
    if not isinstance(args, list) or not isinstance(env, list) or \
            not all(isinstance(e, dict) and "name" in e for e in env):
        raise ClusterError(f'the exec credential plugin of user "{user}" has malformed args '
                           "or env", "see users[].user.exec in the kubeconfig")
    hint = raw.get("installHint")
    return ExecPlugin(user=user, command=command, args=tuple(str(a) for a in args),
                      env=tuple((str(e["name"]), str(e.get("value", ""))) for e in env),
                      api_version=raw["apiVersion"],
                      install_hint=hint.strip() if isinstance(hint, str) else None,
                      cluster=_cluster_info(cluster) if raw.get("provideClusterInfo") else None)


CLUSTER_KEYS = ("server", "tls-server-name", "insecure-skip-tls-verify",
                "certificate-authority-data", "proxy-url", "disable-compression")
EXEC_EXTENSION = "client.authentication.k8s.io/exec"


def _cluster_info(cluster: dict[str, Any]) -> dict[str, Any]:
    """What client-go gives a plugin with provideClusterInfo: the cluster's connection
    fields, and the `config` its exec extension holds."""
    info = {key: cluster[key] for key in CLUSTER_KEYS if key in cluster}
    for extension in cluster.get("extensions") or []:
        if isinstance(extension, dict) and extension.get("name") == EXEC_EXTENSION:
            info["config"] = extension.get("extension")
    return info


def run_exec_plugin(plugin: ExecPlugin, seconds: float) -> dict[str, str]:
    """Run the plugin for at most `seconds`; the kubeconfig user fields its answer gives
    (`token`, or `client-certificate-data` and `client-key-data`)."""
    env = _environment(plugin)
    _check_runnable(plugin, env.get("PATH"))
    try:
        proc = subprocess.Popen(["/bin/sh", "-c", KEEPER, plugin.command, *plugin.args],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, start_new_session=True,
                                preexec_fn=_die_with_parent())
    except OSError as err:
        raise ClusterError(f"{plugin.label} cannot be run: {err.strerror}") from None
    try:
        stdout, stderr = _communicate(proc, plugin, seconds)
    finally:
        _stop(proc)
    if proc.returncode != 0:
        raise _failed(plugin, proc.returncode, stderr)
    return _credentials(plugin, stdout)


def _check_runnable(plugin: ExecPlugin, path: str | None) -> None:
    import shutil
    found = shutil.which(plugin.command, path=path)
    if found is None and not os.path.exists(plugin.command):
        raise ClusterError(f"{plugin.label} was not found",
                           plugin.install_hint or "install it, or correct users[].user.exec"
                           ".command in the kubeconfig")
    if found is None:
        raise ClusterError(f"{plugin.label} cannot be run: {plugin.command} is not an "
                           "executable file")


def _environment(plugin: ExecPlugin) -> dict[str, str]:
    info: dict[str, Any] = {"apiVersion": plugin.api_version, "kind": "ExecCredential",
                            "spec": {"interactive": False}}
    if plugin.cluster is not None:
        info["spec"]["cluster"] = plugin.cluster
    return {**os.environ, **dict(plugin.env), "KUBERNETES_EXEC_INFO": json.dumps(info)}


def _die_with_parent() -> Any:
    """A preexec function: the kernel sends the keeper SIGTERM when svctrace's thread ends
    (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl      # looked up before the fork

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    return preexec


def _communicate(proc: subprocess.Popen[bytes], plugin: ExecPlugin,
                 seconds: float) -> tuple[bytes, bytes]:
    """Read stdout and stderr until both end and the plugin exits, within `seconds` and
    MAX_OUTPUT."""
    end = time.monotonic() + seconds
    output = {"out": bytearray(), "err": bytearray()}
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ, "out")  # type: ignore[arg-type]
        selector.register(proc.stderr, selectors.EVENT_READ, "err")  # type: ignore[arg-type]
        while selector.get_map():
            left = end - time.monotonic()
            if left <= 0:
                raise _timed_out(plugin, seconds)
            for key, _ in selector.select(left):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                output[key.data] += chunk
                if len(output[key.data]) > MAX_OUTPUT:
                    raise ClusterError(f"{plugin.label} printed more than "
                                       f"{MAX_OUTPUT >> 20} MiB; stopped")
    try:
        proc.wait(max(end - time.monotonic(), 0.0))
    except subprocess.TimeoutExpired:
        raise _timed_out(plugin, seconds) from None
    return bytes(output["out"]), bytes(output["err"])


def _timed_out(plugin: ExecPlugin, seconds: float) -> ClusterError:
    return ClusterError(f"{plugin.label} did not answer within {seconds:.3g}s; stopped",
                        "run it by hand to see what it waits for (a login in a browser, a "
                        "prompt?), or raise --request-timeout")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill the plugin's whole session if anything of it still runs, and reap the plugin.
    Ctrl-C and SIGTERM wait for this (it takes milliseconds)."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)} \
        if _in_main_thread() else {}
    caught: list[int] = []
    for sig in previous:
        signal.signal(sig, lambda signum, frame: caught.append(signum))
    try:
        try:
            os.killpg(proc.pid, signal.SIGKILL)     # its own session: pgid == pid
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught:
        raise KeyboardInterrupt


def _in_main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def _failed(plugin: ExecPlugin, status: int, stderr: bytes) -> ClusterError:
    how = (f"was killed by signal {status - 128}" if 128 < status < 160   # as sh reports it
           else f"failed (exit status {status})")
    said = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines()
            if line.strip()]
    detail = f": {_printable(said[-1])}" if said else ""
    return ClusterError(f"{plugin.label} {how}{detail}",
                        "run it by hand, or log in again with the tool that provides it")


def _printable(text: str, limit: int = 200) -> str:
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def _credentials(plugin: ExecPlugin, stdout: bytes) -> dict[str, str]:
    try:
        answer = json.loads(stdout)
    except ValueError:
        raise _unusable(plugin, "its output is not JSON") from None
    status = answer.get("status") if isinstance(answer, dict) else None
    if not isinstance(status, dict):
        raise _unusable(plugin, "no status in its ExecCredential")
    if answer.get("apiVersion") != plugin.api_version:
        raise _unusable(plugin, f"it answered in apiVersion {answer.get('apiVersion')!r}, "
                                f"not {plugin.api_version!r}")
    token, cert, key = (status.get(k) for k in ("token", "clientCertificateData",
                                                "clientKeyData"))
    if isinstance(token, str) and token:
        return {"token": token}
    if isinstance(cert, str) and isinstance(key, str) and cert and key:
        return {"client-certificate-data": base64.b64encode(cert.encode()).decode(),
                "client-key-data": base64.b64encode(key.encode()).decode()}
    raise _unusable(plugin, "its ExecCredential has neither a token nor a client "
                            "certificate and key")


def _unusable(plugin: ExecPlugin, why: str) -> ClusterError:
    return ClusterError(f"{plugin.label} gave no usable credentials: {why}")
