"""The completion engine: the words typed so far → what a TAB offers (Cobra's protocol)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from ui_helpers import RULES, SNAPSHOT

from svctrace.cli import complete, complete_cache

S, R = str(SNAPSHOT), str(RULES)
NFT = Path(__file__).parent.parent / "fixtures" / "rig-v1.36" / "node2.nft.txt"
NFT_JSON = NFT.with_suffix(".json")
COMMANDS = ["completion", "doctor", "explain", "rules", "snapshot", "trace"]
ALL = ["db", "ext-db", "noendpoints", "web", "web-np"]

CASES = [
    # (id, words typed after `svctrace`, the last being completed → values offered)
    ("commands", [""], COMMANDS),
    ("command-prefix", ["ex"], ["explain"]),
    ("after-global-flag", ["--debug", "r"], ["rules"]),
    ("global-options", ["--"], ["--version", "--debug", "--help"]),
    ("svc-prefix", ["explain", "--snapshot", S, "svc/w"], ["svc/web", "svc/web-np"]),
    ("bare-names", ["explain", "--snapshot", S, ""], ALL),
    ("bare-prefix", ["explain", "--snapshot", S, "w"], ["web", "web-np"]),
    ("service-prefix", ["explain", "--snapshot", S, "service/d"], ["service/db"]),
    ("services-prefix", ["explain", "--snapshot", S, "services/n"], ["services/noendpoints"]),
    ("snapshot-after-name", ["explain", "svc/w", "--snapshot", S, "-n", ""], ["svctrace-demo"]),
    ("other-kind", ["explain", "--snapshot", S, "deploy/w"], []),
    ("snapshot-equals", ["explain", f"--snapshot={S}", "-n", "svctrace-demo", "e"], ["ext-db"]),
    ("namespace-filters", ["explain", "--snapshot", S, "-n", "elsewhere", ""], []),
    ("namespaces", ["explain", "--snapshot", S, "-n", ""], ["svctrace-demo"]),
    ("namespace-equals", ["explain", "--snapshot", S, "--namespace=s"],
     ["--namespace=svctrace-demo"]),
    ("nodes", ["explain", "--snapshot", S, "--node", ""], ["node1", "node2"]),
    ("second-positional", ["explain", "--snapshot", S, "svc/web", ""], []),
    ("output", ["explain", "-o", ""], ["text", "wide", "json", "yaml"]),
    ("color-equals", ["explain", "--color=a"], ["--color=auto", "--color=always"]),
    ("fail-on", ["explain", "--fail-on", "w"], ["warning"]),
    ("option-prefix", ["explain", "--sn"], ["--snapshot"]),
    ("option-given-once", ["explain", "--snapshot", S, "--sn"], []),
    ("repeatable-option", ["explain", "--local-ip", "10.0.0.1", "--local"], ["--local-ip"]),
    ("help", ["explain", "--he"], ["--help"]),
    ("rules-file-names", ["rules", "--rules", R, "svc/w"], ["svc/web", "svc/web-np"]),
    ("rules-file-namespace", ["rules", "-n", "default", "--rules", R, ""], ["kubernetes"]),
    ("rules-file-names-nft", ["rules", "--rules", str(NFT), "svc/w"], ["svc/web", "svc/web-np"]),
    ("rules-file-nft-json", ["rules", "-n", "default", "--rules", str(NFT_JSON), ""],
     ["kubernetes"]),
    ("shells", ["completion", ""], ["bash", "zsh", "fish"]),
    ("trace-proto", ["trace", "--proto", "u"], ["udp"]),
    ("missing-snapshot", ["explain", "--snapshot", "/nonexistent.json", "svc/"], []),
    ("not-a-snapshot", ["explain", "--snapshot", str(Path(__file__)), ""], []),
    ("stdin-snapshot", ["explain", "--snapshot", "-", ""], []),
    ("after-dashdash", ["explain", "--snapshot", S, "--", "w"], ["web", "web-np"]),
    ("unknown-command", ["nosuch", ""], []),
]


@pytest.fixture(scope="module")
def root() -> Any:
    from svctrace.cli.kubectl_complete import root_command
    return root_command()


@pytest.fixture(autouse=True)
def no_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[Any, ...]]:
    """Live look-ups answer from a fake cluster; each test has its own cache."""
    calls: list[tuple[Any, ...]] = []

    def fake(kind: str, namespace: str | None, context: str | None,
             kubeconfig: str | None) -> list[str]:
        calls.append((kind, namespace, context, kubeconfig))
        return {"services": ["api", "web"], "namespaces": ["default", "shop"],
                "contexts": ["kind-a", "arn:aws:eks:eu-west-1:1:cluster/b"],
                "nodes": ["worker-1"]}[kind]

    monkeypatch.setattr(complete, "_list_names", fake)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    complete.TIMED_OUT.clear()
    return calls


def values(answer: complete.Completion) -> list[str]:
    return [c.split("\t", 1)[0] for c in answer.candidates]


@pytest.mark.parametrize("words, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_candidates(root: Any, words: list[str], expected: list[str]) -> None:
    assert values(complete.complete(root, words)) == expected


@pytest.mark.parametrize("words, directive", [
    (["explain", "--rules", ""], complete.DEFAULT),           # the shell completes file names
    (["explain", "--snapshot=./"], complete.DEFAULT),
    (["snapshot", "-f", ""], complete.DEFAULT),
    (["explain", "--kubeconfig", ""], complete.DEFAULT),
    (["explain", "--snapshot", S, "svc/"], complete.NO_FILE_COMP),
    (["trace", "--dst", ""], complete.NO_FILE_COMP),           # nothing to offer, no files
    (["explain", "--probe=x"], complete.NO_FILE_COMP),
], ids=["rules", "snapshot-equals", "snapshot-file", "kubeconfig", "names", "dst", "flag"])
def test_directive(root: Any, words: list[str], directive: int) -> None:
    answer = complete.complete(root, words)
    assert answer.directive == directive
    assert answer.cobra().endswith(f":{directive}\n")


def test_cobra_format(root: Any) -> None:
    text = complete.complete(root, ["explain", "--snapshot", S, "svc/w"]).cobra()
    assert text == "svc/web\nsvc/web-np\n:4\n"
    described = complete.complete(root, ["ex"]).cobra().splitlines()
    assert described[0].startswith("explain\t") and described[-1] == ":4"


def test_live_names_use_the_options_on_the_line(root: Any, no_cluster: list[Any]) -> None:
    words = ["explain", "-n", "shop", "--context", "kind-a", "--kubeconfig", "/k", "svc/"]
    assert values(complete.complete(root, words)) == ["svc/api", "svc/web"]
    assert no_cluster == [("services", "shop", "kind-a", "/k")]


@pytest.mark.parametrize("words, kind, expected", [
    (["explain", "-n", "s"], "namespaces", ["shop"]),
    (["snapshot", "--context", ""], "contexts", ["arn:aws:eks:eu-west-1:1:cluster/b", "kind-a"]),
    (["explain", "--node", "w"], "nodes", ["worker-1"]),
    (["snapshot", "-n", "shop", "a"], "services", ["api"]),
], ids=["namespaces", "contexts", "nodes", "snapshot-services"])
def test_live_kinds(root: Any, no_cluster: list[Any], words: list[str], kind: str,
                    expected: list[str]) -> None:
    assert values(complete.complete(root, words)) == expected
    assert no_cluster[0][0] == kind


def test_live_names_are_cached_briefly(root: Any, no_cluster: list[Any]) -> None:
    for _ in range(3):
        assert values(complete.complete(root, ["explain", "w"])) == ["web"]
    assert len(no_cluster) == 1
    key = ["services", None, None, None, None]
    assert complete_cache.cache_read(key) == ["api", "web"]
    assert complete_cache.cache_read(key, now=time.time() + complete_cache.CACHE_TTL + 1) is None


def test_cache_is_private_and_keyed(root: Any, tmp_path: Path) -> None:
    complete.complete(root, ["explain", "-n", "a", ""])
    complete.complete(root, ["explain", "-n", "b", ""])
    files = list((tmp_path / "cache" / "svctrace").iterdir())
    assert len(files) == 2
    assert all(f.stat().st_mode & 0o077 == 0 for f in files)


def test_slow_cluster_completes_nothing_within_the_deadline(
        root: Any, monkeypatch: pytest.MonkeyPatch, no_cluster: list[Any]) -> None:
    monkeypatch.setattr(complete, "LIVE_TIMEOUT", 0.3)
    monkeypatch.setattr(complete, "_list_names", lambda *a: time.sleep(5) or ["late"])
    started = time.monotonic()
    assert complete.complete(root, ["explain", "svc/"]).candidates == []
    assert time.monotonic() - started < 1.0
    assert complete.TIMED_OUT.is_set()
    assert complete.complete(root, ["explain", "svc/"]).candidates == []   # cached: no wait
    assert time.monotonic() - started < 1.0


def test_failing_cluster_completes_nothing(root: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any) -> list[str]:
        raise RuntimeError("connection refused")
    monkeypatch.setattr(complete, "_list_names", boom)
    assert complete.complete(root, ["explain", "-n", ""]).candidates == []


def test_never_raises() -> None:
    assert complete.complete(None, ["explain", ""]) == complete.Completion()
    assert complete.complete(object(), []).cobra() == ":4\n"


def test_unwritable_cache_is_ignored(root: Any, monkeypatch: pytest.MonkeyPatch,
                                     tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert values(complete.complete(root, ["explain", "w"])) == ["web"]


def test_names_with_control_characters_are_not_offered(root: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A name with a newline would forge a candidate or the directive (`:0` = files)."""
    monkeypatch.setattr(complete, "_list_names", lambda *a: ["ok", "x\n:0", "esc\x1b[2J", "t\tx"])
    assert complete.complete(root, ["explain", ""]).cobra() == "ok\n:4\n"


@pytest.mark.parametrize("value, seconds", [
    (None, 1.0), ("2.5", 2.5), ("0", 0.1), ("1e9", 10.0), ("inf", 10.0), ("nan", 1.0),
    ("soon", 1.0), ("-3", 0.1),
], ids=["default", "set", "too-small", "too-large", "inf", "nan", "not-a-number", "negative"])
def test_deadline_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str | None,
                                       seconds: float) -> None:
    if value is None:
        monkeypatch.delenv(complete.TIMEOUT_ENV, raising=False)
    else:
        monkeypatch.setenv(complete.TIMEOUT_ENV, value)
    assert complete.deadline() == seconds
