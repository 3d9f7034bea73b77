"""What a user types or a kubeconfig holds, checked before any request (issue 11, items 3, 9,
15, 16, 17): names as Kubernetes validates them, --request-timeout values, kubeconfig YAML
bombs, credentials in server URLs, insecure-skip-tls-verify. The real CLI against the HTTPS
test API server; each refusal is exit 2 with one line and no request sent."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from apiserver import FakeApiServer
from clusterkit import DEMO, PUB, error_lines, run_cli

from svctrace.cluster.live import list_names, load_live_view
from svctrace.cluster.names import check_name, redact
from svctrace.errors import UsageError

BAD_NAMES = [
    # (id, arguments after `explain`, words in the error line)
    ("svc-dotdot", ["svc/.."], "invalid Service name '..'"),
    ("svc-dot", ["svc/."], "invalid Service name '.'"),
    ("svc-upper", ["svc/Web"], "invalid Service name 'Web'"),
    ("svc-comma", ["svc/a,b"], "invalid Service name 'a,b'"),
    ("svc-digit-first", ["svc/1web"], "DNS-1035 label"),
    ("svc-too-long", ["svc/" + "a" * 64], "at most 63 characters"),
    ("svc-newline", ["svc/web\n"], "invalid Service name 'web\\n'"),
    ("namespace-dotdot", ["edge", "-n", ".."], "invalid namespace name '..'"),
    ("namespace-slash-encoded", ["edge", "-n", "a%2fb"], "invalid namespace name"),
    ("node-dotdot", ["edge", "--node", ".."], "--node: invalid node name '..'"),
    ("node-empty", ["edge", "--node", ""], "--node: invalid node name ''"),
    ("node-comma", ["edge", "--node", "node1,spec.nodeName!=x"], "invalid node name"),
    ("node-space", ["edge", "--node", "node 1"], "invalid node name"),
]


@pytest.mark.parametrize("args,words", [c[1:] for c in BAD_NAMES],
                         ids=[c[0] for c in BAD_NAMES])
def test_bad_names_are_refused_before_any_request(api: FakeApiServer, kubeconfig: Path,
                                                  args: list[str], words: str) -> None:
    proc = run_cli("explain", *args, kubeconfig=kubeconfig)
    line, _ = error_lines(proc.stderr)
    assert proc.returncode == 2 and words in line, proc.stderr
    assert not api.requests


def test_bad_names_in_a_snapshot_command(api: FakeApiServer, kubeconfig: Path) -> None:
    for args in (["svc/.."], ["-n", "..", "svc/edge"]):
        proc = run_cli("snapshot", "-f", "-", *args, kubeconfig=kubeconfig)
        assert proc.returncode == 2 and "invalid" in error_lines(proc.stderr)[0]
    assert not api.requests


def test_completion_with_a_bad_namespace_asks_nothing(api: FakeApiServer,
                                                      kubeconfig: Path) -> None:
    assert list_names("services", "..", None, str(kubeconfig), 2.0) == []
    assert not api.requests


NAMES = [
    # (kind, name, valid)
    ("Service", "web", True), ("Service", "a-1", True), ("Service", "a" * 63, True),
    ("Service", "a" * 64, False), ("Service", "-a", False), ("Service", "a-", False),
    ("Service", "a.b", False), ("Service", "é", False), ("Service", "", False),
    ("namespace", "1ns", True), ("namespace", "kube-system", True), ("namespace", "a.b", False),
    ("node", "node1.example.com", True), ("node", "10.0.0.1", True), ("node", "a..b", False),
    ("node", ".", False), ("node", "x" * 254, False), ("node", "ｎode", False),
]


@pytest.mark.parametrize("kind,name,valid", NAMES, ids=[f"{k}-{n[:10]!r}-{v}"
                                                       for k, n, v in NAMES])
def test_name_rules(kind: str, name: str, valid: bool) -> None:
    if valid:
        assert check_name(kind, name) == name
    else:
        with pytest.raises(UsageError):
            check_name(kind, name)


TIMEOUTS = [
    # (value, accepted)
    ("inf", False), ("1e309", False), ("nan", False), ("-1", False), ("0", False),
    ("0ms", False), ("1_0", False), ("١٠", False), ("25h", False), ("5 s", False),
    ("5s", True), ("500ms", True), ("2", True), ("1.5m", True), ("1h", True),
]


@pytest.mark.parametrize("value,accepted", TIMEOUTS, ids=[t[0] for t in TIMEOUTS])
def test_request_timeout_values(value: str, accepted: bool) -> None:
    proc = run_cli("explain", "web", "--request-timeout", value, "--snapshot", str(DEMO),
                   "-o", "json")
    if accepted:
        assert proc.returncode == 0, proc.stderr
    else:
        line, _ = error_lines(proc.stderr)
        assert proc.returncode == 2 and "--request-timeout" in line


def _bomb(levels: int) -> str:
    lines = ["apiVersion: v1", "kind: Config", "x0: &x0 [a, a, a, a, a, a, a, a, a]"]
    lines += [f"x{n}: &x{n} [" + ", ".join([f"*x{n - 1}"] * 9) + "]" for n in range(1, levels)]
    return "\n".join(lines + ["clusters: []", "contexts: []", "users: []"]) + "\n"


@pytest.mark.parametrize("text,words", [
    (_bomb(9), "(an alias bomb?)"),
    (_bomb(8), "(an alias bomb?)"),
    ("clusters: " + "[" * 100_000, "nested more than 200 levels"),
], ids=["bomb-9-levels", "bomb-8-levels", "deep"])
def test_kubeconfig_yaml_bombs(tmp_path: Path, text: str, words: str) -> None:
    kc = tmp_path / "kubeconfig"
    kc.write_text(text)
    began = time.monotonic()
    proc = run_cli("explain", "web", kubeconfig=kc)
    line, _ = error_lines(proc.stderr)
    assert proc.returncode == 2 and words in line and str(kc) in line, proc.stderr
    assert len(line) < 200 and time.monotonic() - began < 10


def test_a_kubeconfig_bomb_gives_no_completion(tmp_path: Path) -> None:
    (tmp_path / "kc").write_text(_bomb(9))
    began = time.monotonic()
    assert list_names("contexts", None, None, str(tmp_path / "kc"), 1.0) == []
    assert list_names("services", None, None, str(tmp_path / "kc"), 1.0) == []
    assert time.monotonic() - began < 1.0


SECRET = "PASSWORD-8f2e"


def _with_credentials_in_url(api: FakeApiServer, tmp_path: Path, port: int | None = None) -> Path:
    path = api.kubeconfig(tmp_path / "kc", namespace=PUB)
    config = json.loads(path.read_text())
    host = f"127.0.0.1:{port or api.httpd.server_address[1]}"
    config["clusters"][0]["cluster"]["server"] = f"https://admin:{SECRET}@{host}"
    path.write_text(json.dumps(config))
    return path


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("fault", ["refused", "401", "403", "500", "slow", "tls"])
def test_credentials_in_the_server_url_are_never_shown(api: FakeApiServer, tmp_path: Path,
                                                       fault: str) -> None:
    kc = _with_credentials_in_url(api, tmp_path, _closed_port() if fault == "refused" else None)
    args = ["explain", "edge"]
    if fault in ("401", "403", "500"):
        api.fail("/services/", int(fault))
    elif fault == "slow":
        api.slow("/services/", 3)
        args += ["--request-timeout", "500ms"]
    elif fault == "tls":
        config = json.loads(kc.read_text())
        del config["clusters"][0]["cluster"]["certificate-authority-data"]
        kc.write_text(json.dumps(config))
    proc = run_cli(*args, kubeconfig=kc)
    assert proc.returncode in (3, 4), proc.stderr
    assert SECRET not in proc.stderr + proc.stdout and "admin" not in proc.stderr
    line, _ = error_lines(proc.stderr)
    assert "REDACTED@127.0.0.1" in line or fault in ("403", "500"), line


@pytest.mark.parametrize("text,expected", [
    ("at https://u:p@h:1/x", "at https://REDACTED@h:1/x"),
    ("https://token@h", "https://REDACTED@h"),
    ("https://u:p@ss@h/a@b", "https://REDACTED@h/a@b"),
    ("https://h/a@b", "https://h/a@b"),
    ("no url", "no url"),
], ids=["user-password", "user-only", "at-in-password", "at-in-path", "none"])
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_insecure_skip_tls_verify_is_one_line(api: FakeApiServer, tmp_path: Path) -> None:
    path = api.kubeconfig(tmp_path / "kc", namespace=PUB)
    config = json.loads(path.read_text())
    cluster = config["clusters"][0]["cluster"]
    del cluster["certificate-authority-data"]
    cluster["insecure-skip-tls-verify"] = True
    path.write_text(json.dumps(config))
    proc = run_cli("explain", "edge", "-o", "json", kubeconfig=path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    insecure = [line for line in lines if "insecure-skip-tls-verify" in line]
    assert insecure == ["svctrace: insecure-skip-tls-verify is set: the API server's "
                        "certificate is not checked"], proc.stderr
    assert "Warning" not in proc.stderr and "warnings.warn" not in proc.stderr
    assert len(api.requests) == 4          # one line for four requests
    quiet = run_cli("snapshot", "-f", "-", kubeconfig=path)
    assert quiet.returncode == 0 and "InsecureRequestWarning" not in quiet.stderr
    assert quiet.stderr.count("insecure-skip-tls-verify") == 1


def test_a_live_view_with_a_bad_namespace_raises_usage(kubeconfig: Path,
                                                       api: FakeApiServer) -> None:
    with pytest.raises(UsageError):
        load_live_view("edge", "Bad_NS", None, str(kubeconfig))
    assert not api.requests


def test_library_warnings_become_one_line_each(api: FakeApiServer, kubeconfig: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A warning of urllib3 or the kubernetes client (a FutureWarning, say) is one
    `svctrace: warning:` line, once; a warning of anything else is left alone."""
    import warnings

    from svctrace.cluster.live import connect
    connect(str(kubeconfig), None, 2.0)
    library = str(Path("site-packages") / "urllib3" / "connectionpool.py")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        for _ in range(2):
            warnings.warn_explicit("the 'strict' parameter is deprecated\nand more",
                                   FutureWarning, "/x/" + library, 10)
        warnings.warn_explicit("ours", UserWarning, "/x/svctrace/other.py", 1)
    err = capsys.readouterr().err
    assert err.count("svctrace: warning: the 'strict' parameter is deprecated\n") == 1
    assert "and more" not in err and "svctrace: warning: ours" not in err
