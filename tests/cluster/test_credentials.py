"""Kubeconfig exec credential plugins (issue 11, items 4 and 17): real plugins (small shell
scripts the tests write) run by the real CLI against the HTTPS test API server. A plugin that
hangs is stopped at --request-timeout and nothing of it is left running, on a TAB too; one
that fails is exit 4 naming it (not a 401), with no raw `ERROR:root:` line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from apiserver import FakeApiServer
from clusterkit import ROOT, error_lines, run_cli

API_VERSION = "client.authentication.k8s.io/v1"


def plugin(tmp_path: Path, name: str, body: str) -> Path:
    """An executable shell script `name` in tmp_path."""
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def exec_kubeconfig(api: FakeApiServer, tmp_path: Path, command: str, **extra: Any) -> Path:
    """A kubeconfig for `api` whose user gets its credentials from `command`."""
    path = api.kubeconfig(tmp_path / "kubeconfig", namespace="svctrace-pub")
    config = json.loads(path.read_text())
    config["users"][0]["user"] = {"exec": {"apiVersion": API_VERSION, "command": command,
                                           **extra}}
    path.write_text(json.dumps(config))
    return path


def credential(token: str) -> str:
    return json.dumps({"apiVersion": API_VERSION, "kind": "ExecCredential",
                       "status": {"token": token}})


def hanging(tmp_path: Path) -> Path:
    """A plugin that never answers, and has started a child of its own (pids in files)."""
    return plugin(tmp_path, "hang-login", f"echo $$ > {tmp_path}/plugin.pid\n"
                  f"sleep 300 &\necho $! > {tmp_path}/child.pid\nwait\n")


def running(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting for init to reap it does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def pids(tmp_path: Path) -> list[int]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            return [int((tmp_path / f).read_text()) for f in ("plugin.pid", "child.pid")]
        except (FileNotFoundError, ValueError):
            time.sleep(0.05)
    raise AssertionError("the plugin never started")


def gone(found: list[int], within: float = 2.0) -> bool:
    deadline = time.monotonic() + within
    while any(running(p) for p in found) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(running(p) for p in found)


def test_a_working_plugin_gives_the_token(api: FakeApiServer, tmp_path: Path) -> None:
    script = plugin(tmp_path, "login", f'echo "$KUBERNETES_EXEC_INFO" > {tmp_path}/info\n'
                    f"echo '{credential('s3cret')}'\n")
    kc = exec_kubeconfig(api, tmp_path, str(script), env=[{"name": "X", "value": "1"}])
    proc = run_cli("explain", "edge", "-o", "json", kubeconfig=kc)
    assert proc.returncode == 0, proc.stderr
    assert api.requests[0].headers["authorization"] == "Bearer s3cret"
    info = json.loads((tmp_path / "info").read_text())
    assert info["kind"] == "ExecCredential" and info["spec"]["interactive"] is False
    assert "s3cret" not in proc.stderr


def test_cluster_info_is_provided_when_asked(api: FakeApiServer, tmp_path: Path) -> None:
    script = plugin(tmp_path, "login", f'echo "$KUBERNETES_EXEC_INFO" > {tmp_path}/info\n'
                    f"echo '{credential('s3cret')}'\n")
    kc = exec_kubeconfig(api, tmp_path, str(script), provideClusterInfo=True)
    config = json.loads(kc.read_text())
    config["clusters"][0]["cluster"]["extensions"] = [
        {"name": "client.authentication.k8s.io/exec", "extension": {"audience": "rig"}}]
    kc.write_text(json.dumps(config))
    assert run_cli("explain", "edge", "-o", "json", kubeconfig=kc).returncode == 0
    cluster = json.loads((tmp_path / "info").read_text())["spec"]["cluster"]
    assert cluster["server"] == api.url and cluster["config"] == {"audience": "rig"}
    assert "certificate-authority-data" in cluster and "extensions" not in cluster


def test_a_relative_command_is_found_beside_the_kubeconfig(api: FakeApiServer,
                                                           tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    plugin(tmp_path / "bin", "login", f"echo '{credential('s3cret')}'\n")
    kc = exec_kubeconfig(api, tmp_path, "./bin/login")
    assert run_cli("explain", "edge", "-o", "json", kubeconfig=kc).returncode == 0


FAILING = [
    # (id, script body, exec extras, words in the error line, words in the hint)
    ("exit-1", "echo 'error: the refresh token has expired' >&2\nexit 1\n", {},
     'the credential plugin "login" of user "rig" failed (exit status 1): error: the refresh '
     "token has expired", "run it by hand"),
    ("not-json", "echo hello\n", {}, 'plugin "login" of user "rig" gave no usable '
     "credentials: its output is not JSON", None),
    ("no-token", f"echo '{json.dumps({'apiVersion': API_VERSION, 'status': {}})}'\n", {},
     "neither a token nor a client certificate", None),
    ("wrong-version", "echo '" + json.dumps({"apiVersion": "v0", "status": {"token": "t"}})
     + "'\n", {}, "answered in apiVersion 'v0'", None),
    ("killed", "kill -9 $$\n", {}, "was killed by signal 9", None),
]


@pytest.mark.parametrize("body,extra,words,hint", [c[1:] for c in FAILING],
                         ids=[c[0] for c in FAILING])
def test_a_failing_plugin_is_exit_4_naming_it(api: FakeApiServer, tmp_path: Path, body: str,
                                              extra: dict, words: str, hint: str | None) -> None:
    kc = exec_kubeconfig(api, tmp_path, str(plugin(tmp_path, "login", body)), **extra)
    proc = run_cli("explain", "edge", kubeconfig=kc)
    line, hints = error_lines(proc.stderr)
    assert proc.returncode == 4 and words in line, proc.stderr
    assert "401" not in proc.stderr and "ERROR:root" not in proc.stderr
    assert hint is None or hint in hints[0]
    assert not api.requests                  # no request went out without credentials


def test_a_missing_plugin_shows_its_install_hint(api: FakeApiServer, tmp_path: Path) -> None:
    kc = exec_kubeconfig(api, tmp_path, "no-such-login-plugin",
                         installHint="install it with: apt install no-such-login-plugin")
    proc = run_cli("explain", "edge", kubeconfig=kc)
    line, hints = error_lines(proc.stderr)
    assert proc.returncode == 4 and '"no-such-login-plugin" of user "rig" was not found' in line
    assert hints == ["hint: install it with: apt install no-such-login-plugin"]


def test_endless_output_is_cut(api: FakeApiServer, tmp_path: Path) -> None:
    kc = exec_kubeconfig(api, tmp_path, str(plugin(tmp_path, "login", "exec yes\n")))
    proc = run_cli("explain", "edge", kubeconfig=kc)
    line, _ = error_lines(proc.stderr)
    assert proc.returncode == 4 and "printed more than 1 MiB" in line


def test_a_hanging_plugin_is_stopped_at_the_timeout(api: FakeApiServer, tmp_path: Path) -> None:
    kc = exec_kubeconfig(api, tmp_path, str(hanging(tmp_path)))
    began = time.monotonic()
    proc = run_cli("explain", "edge", "--request-timeout", "1s", kubeconfig=kc)
    took = time.monotonic() - began
    line, _ = error_lines(proc.stderr)
    assert proc.returncode == 4 and '"hang-login" of user "rig" did not answer within 1s' in line
    assert took < 5, took
    assert gone(pids(tmp_path), within=0.5)          # the plugin and its child: both gone


def test_ctrl_c_while_a_plugin_hangs(api: FakeApiServer, tmp_path: Path) -> None:
    kc = exec_kubeconfig(api, tmp_path, str(hanging(tmp_path)))
    env = {**os.environ, "KUBECONFIG": str(kc), "no_proxy": "127.0.0.1"}
    proc = subprocess.Popen([sys.executable, "-m", "svctrace", "explain", "edge",
                             "--request-timeout", "60s"], env=env, cwd=ROOT,
                            stderr=subprocess.PIPE, text=True)
    found = pids(tmp_path)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 130 and stderr.strip() == "svctrace: interrupted", stderr
    assert gone(found, within=0.5)


def test_a_tab_leaves_no_plugin_behind(api: FakeApiServer, tmp_path: Path) -> None:
    """Completion gives up after its own limit and exits at once (os._exit): nothing of the
    plugin may outlive it (on a loaded machine the plugin may not even have started)."""
    kc = exec_kubeconfig(api, tmp_path, str(hanging(tmp_path)))
    env = {**os.environ, "KUBECONFIG": str(kc), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "no_proxy": "127.0.0.1"}
    began = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "svctrace", "__complete", "explain", ""],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert time.monotonic() - began < 5
    assert proc.returncode == 0 and proc.stdout.strip().endswith(":4"), proc.stdout
    time.sleep(0.3)
    assert not plugin_processes(tmp_path)


def plugin_processes(tmp_path: Path) -> list[int]:
    """Pids of running processes started from tmp_path's plugin or by it (its `sleep 300`)."""
    found = []
    for pid_file in ("plugin.pid", "child.pid"):
        try:
            pid = int((tmp_path / pid_file).read_text())
        except (FileNotFoundError, ValueError):
            continue
        if running(pid):
            found.append(pid)
    return found


ABANDON = """
import os, sys
from svctrace.cluster.live import import_client_light, list_names
import_client_light()                       # as a TAB would have, before it gives up
from svctrace.cli import complete
names, finished = complete.run_with_deadline(lambda: list_names("services", timeout=1.0), 1.0)
print(names, finished, flush=True)
os._exit(0)
"""


def test_the_lookup_a_tab_abandons_stops_its_plugin_first(api: FakeApiServer,
                                                          tmp_path: Path) -> None:
    """Completion's own sequence (look-up in a worker thread, abandoned after 1 s, then
    os._exit): the plugin is stopped and reaped within the look-up's budget, grandchild too."""
    kc = exec_kubeconfig(api, tmp_path, str(hanging(tmp_path)))
    env = {**os.environ, "KUBECONFIG": str(kc), "no_proxy": "127.0.0.1"}
    proc = subprocess.run([sys.executable, "-c", ABANDON], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert gone(pids(tmp_path), within=0.3)
