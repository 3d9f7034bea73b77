"""Live completion against the HTTPS test API server (tests/cluster/apiserver.py): a TAB asks
the cluster through a real kubeconfig, within its deadline, caches the answer briefly, and
completes nothing (silently) when the server is slow or refuses.

The server also serves Services whose names a real API server would refuse but a crafted
snapshot, a proxy or a compromised cluster could send (`web;touch pwned;#`): each shell must
insert them escaped, so that running the completed line passes the name as one literal word
and runs nothing."""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_shells import BASH_DRIVER, BASH_SCRIPT, Tmux, readline_words
from ui_helpers import BASH_COMPLETION, ROOT, need, run, user_environment

sys.path.insert(0, str(ROOT / "tests" / "cluster"))

from apiserver import FakeApiServer, load_items, make_certificate  # noqa: E402

DEMO = ROOT / "tests/fixtures/rig-v1.36/api/all.json"
NS = "svctrace-demo"
HOSTILE = ["semi;touch pwned;#", "dollar$(touch pwned)", "tick `touch pwned`", "it's"]
# all of it in one name, for the interactive shells
EVERYTHING = "all;touch pwned;$(touch pwned)`touch pwned` 'q\"x"
REAL = ["db", "ext-db", "noendpoints", "web", "web-np"]
DEADLINE = 1.0 + 1.5          # complete.LIVE_TIMEOUT plus start-up on a loaded machine


def hostile_items() -> list[dict[str, Any]]:
    items = copy.deepcopy(load_items(DEMO))
    template = next(i for i in items if i["kind"] == "Service" and
                    i["metadata"]["name"] == "web")
    for name in [*HOSTILE, EVERYTHING]:
        svc = copy.deepcopy(template)
        svc["metadata"]["name"] = name
        items.append(svc)
    return items


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tls")
    make_certificate(directory)
    return directory


@pytest.fixture
def api(cert_dir: Path) -> Iterator[FakeApiServer]:
    with FakeApiServer(hostile_items(), cert_dir) as server:
        yield server


@pytest.fixture
def env(api: FakeApiServer, tmp_path: Path) -> dict[str, str]:
    """A user's shell environment whose kubeconfig points at the test API server."""
    env = user_environment(tmp_path)
    env.update(KUBECONFIG=str(api.kubeconfig(tmp_path / "kubeconfig", namespace=NS)),
               no_proxy="127.0.0.1,localhost", NO_PROXY="127.0.0.1,localhost")
    # the first TAB imports the kubernetes client: on a loaded CI machine that alone can
    # take the default second, and these tests are about the names, not the deadline
    env["SVCTRACE_COMPLETION_TIMEOUT"] = "8"
    return env


@pytest.fixture
def default_deadline(env: dict[str, str]) -> dict[str, str]:
    """The same environment with the default one-second deadline."""
    return {k: v for k, v in env.items() if k != "SVCTRACE_COMPLETION_TIMEOUT"}


def tab(words: list[str], env: dict[str, str]) -> tuple[list[str], float]:
    started = time.monotonic()
    proc = run(["svctrace", "__complete", "--", *words], env=env)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    *candidates, directive = proc.stdout.splitlines()
    assert directive.startswith(":")
    return [c.split("\t", 1)[0] for c in candidates], elapsed


def service_lists(api: FakeApiServer) -> list[str]:
    return [r.path for r in api.requests if r.path.endswith("/services")]


def test_services_from_the_cluster(api: FakeApiServer, env: dict[str, str]) -> None:
    names, _ = tab(["explain", "svc/"], env)
    assert names == sorted("svc/" + n for n in [*REAL, *HOSTILE, EVERYTHING])
    assert service_lists(api) == [f"/api/v1/namespaces/{NS}/services"]
    # (the server answers only requests that carry the kubeconfig's token)


@pytest.mark.parametrize("words, expected, path", [
    (["explain", "-n", "svc"], [NS], "/api/v1/namespaces"),
    (["explain", "web", "--node", ""], ["node1", "node2"], "/api/v1/nodes"),
    (["rules", "-n", NS, "w"], ["web", "web-np"], f"/api/v1/namespaces/{NS}/services"),
], ids=["namespaces", "nodes", "rules-services"])
def test_other_kinds(api: FakeApiServer, env: dict[str, str], words: list[str],
                     expected: list[str], path: str) -> None:
    assert tab(words, env)[0] == expected
    assert [r.path for r in api.requests] == [path]


def test_contexts_come_from_the_kubeconfig_alone(api: FakeApiServer,
                                                 env: dict[str, str]) -> None:
    assert tab(["explain", "--context", ""], env)[0] == ["rig"]
    assert api.requests == []


def test_a_burst_of_tabs_asks_once(api: FakeApiServer, env: dict[str, str]) -> None:
    for prefix in ("", "w", "we", "web"):
        tab(["explain", prefix], env)
    assert len(service_lists(api)) == 1


def test_a_slow_server_completes_nothing_within_the_deadline(
        api: FakeApiServer, default_deadline: dict[str, str]) -> None:
    api.slow(r"/services$", 10)
    names, seconds = tab(["explain", "svc/"], default_deadline)
    assert names == [] and seconds < DEADLINE


@pytest.mark.parametrize("status", [401, 403, 500])
def test_a_refusing_server_completes_nothing_silently(api: FakeApiServer, env: dict[str, str],
                                                      status: int) -> None:
    api.fail(r"/services$", status)
    assert tab(["explain", "svc/"], env)[0] == []          # (tab checks stderr is empty)
    assert service_lists(api)                                # it did ask


# --- the names reach each shell escaped --------------------------------------------------

def run_completed(shell: str, command_line: str, tmp_path: Path) -> list[str]:
    """Run `command_line` in `shell` with `svctrace` replaced by `printf '%s\\n'`: the words
    it would get, one a line; asserts that nothing else ran."""
    script = f"printf '%s\\n' {command_line.split(' ', 1)[1]}"
    proc = subprocess.run([shell, "-c", script] if shell != "fish" else
                          ["fish", "--no-config", "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, timeout=10)
    assert not (tmp_path / "pwned").exists(), command_line
    return proc.stdout.splitlines()


@pytest.mark.parametrize("name", HOSTILE, ids=["semicolon", "dollar-paren", "backtick", "quote"])
def test_bash_inserts_names_escaped(name: str, env: dict[str, str], tmp_path: Path) -> None:
    need("bash")
    prefix = name.split()[0][:2]     # a word of its own: no blank in it
    line = f"svctrace explain svc/{prefix}"
    words = readline_words(line)
    proc = run(["bash", "--norc", "--noprofile", "-c", BASH_DRIVER, "bash",
                str(BASH_COMPLETION), str(BASH_SCRIPT), line, str(len(words) - 1), *words],
               env=env)
    assert proc.stderr == ""
    replies = proc.stdout.splitlines()
    match = [r for r in replies if run_completed("bash", f"svctrace {r}", tmp_path) ==
             [f"svc/{name}"]]
    assert len(match) == 1, replies


def test_fish_inserts_names_escaped(env: dict[str, str], tmp_path: Path) -> None:
    """fish escapes what it inserts itself; what `complete -C` lists is the raw value."""
    need("fish")
    command = f"source {ROOT / 'completions/svctrace.fish'}; complete -C 'svctrace explain svc/'"
    proc = run(["fish", "--no-config", "-c", command], env=env)
    assert proc.stderr == ""
    listed = [c.split("\t", 1)[0] for c in proc.stdout.splitlines()]
    assert sorted(listed) == sorted("svc/" + n for n in [*REAL, *HOSTILE, EVERYTHING])


SHELLS = {
    "zsh": (["zsh", "-f"], "autoload -Uz compinit && compinit -u -D; "
            f"source {ROOT / 'completions/svctrace.zsh'}; PROMPT='READY> '"),
    "fish": (["fish", "--no-config"], f"source {ROOT / 'completions/svctrace.fish'}; "
             "function fish_prompt; echo -n 'READY> '; end"),
    "bash": (["bash", "--norc", "--noprofile"],
             f"source {BASH_COMPLETION}; source {BASH_SCRIPT}; PS1='READY> '"),
}


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_interactive_tab_then_enter_runs_nothing(shell: str, env: dict[str, str],
                                                 tmp_path: Path) -> None:
    """In a real terminal: TAB completes the unique name, then the line is run with `echo`
    in front. The name must come back as one literal word, and no file may appear."""
    need(shell)
    argv, setup = SHELLS[shell]
    term = Tmux(argv, env)
    try:
        term.send(f"cd {tmp_path}; {setup}; clear", "Enter")
        term.wait_for(r"^READY> $")
        term.send("-l", "svctrace explain svc/al")
        term.send("Tab")
        term.wait_for(r"svctrace explain svc/all", timeout=15)       # completed
        term.send("C-a")
        term.send("-l", "printf '<%s>' ")
        term.send("C-e")
        term.send("Enter")
        screen = term.wait_for(r"^<svctrace>", timeout=15)
    finally:
        term.close()
    assert f"<svctrace><explain><svc/{EVERYTHING}>" in screen, screen
    assert not (tmp_path / "pwned").exists()
