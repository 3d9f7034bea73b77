"""Completion through real shells, against a snapshot: what a user sees after TAB.

bash: bash-completion and completions/svctrace.bash sourced, the completion function called
with COMP_WORDS split the way readline splits them (at blanks, and at = and :); and an
interactive bash in tmux, keys sent, screen read. fish: `complete -C`. zsh: in tmux.
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid

import pytest
from ui_helpers import BASH_COMPLETION, ROOT, RULES, SNAPSHOT, cannot_run, need, run

S = str(SNAPSHOT.relative_to(ROOT))
BASH_SCRIPT = ROOT / "completions/svctrace.bash"

BASH_DRIVER = r"""
source "$1"
source "$2"
COMP_LINE=$3
COMP_POINT=${#COMP_LINE}
COMP_CWORD=$4
COMP_WORDS=("${@:5}")
COMP_TYPE=9 COMP_KEY=9
_svctrace_complete "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""


def readline_words(line: str) -> list[str]:
    """COMP_WORDS as bash builds them: split at blanks, and at = and : (COMP_WORDBREAKS),
    which become words of their own."""
    words = [w for token in line.split() for w in re.findall(r"[=:]+|[^=:]+", token)]
    return [*words, ""] if line.endswith(" ") or not words else words


def bash_complete(line: str, env: dict[str, str]) -> list[str]:
    need("bash")
    if not BASH_COMPLETION.exists():
        cannot_run("bash-completion is not installed (.ci/run installs it)")
    words = readline_words(line)
    proc = run(["bash", "--norc", "--noprofile", "-c", BASH_DRIVER, "bash", str(BASH_COMPLETION),
                str(BASH_SCRIPT), line, str(len(words) - 1), *words], env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return [w for w in proc.stdout.splitlines() if w]


BASH_CASES = [
    ("svc-prefix", f"svctrace explain --snapshot {S} svc/we", ["svc/web", "svc/web-np"]),
    ("bare", f"svctrace explain --snapshot {S} ", ["db", "ext-db", "noendpoints", "web",
                                                   "web-np"]),
    ("unique", f"svctrace explain -n svctrace-demo --snapshot {S} svc/no", ["svc/noendpoints"]),
    ("commands", "svctrace ", ["completion", "doctor", "explain", "rules", "snapshot",
                              "trace"]),
    ("command-prefix", "svctrace tr", ["trace"]),
    ("options", "svctrace explain --sn", ["--snapshot"]),
    ("namespaces", f"svctrace explain --snapshot {S} -n ", ["svctrace-demo"]),
    ("namespace-equals", f"svctrace explain --snapshot {S} --namespace=svc", ["svctrace-demo"]),
    ("nodes", f"svctrace explain web --snapshot {S} --node ", ["node1", "node2"]),
    ("snapshot-file", "svctrace explain --snapshot tests/fixtures/rig-v1.36/api/al",
     ["tests/fixtures/rig-v1.36/api/all.json"]),
    ("snapshot-file-equals", "svctrace explain --snapshot=tests/fixtures/rig-v1.36/api/al",
     ["tests/fixtures/rig-v1.36/api/all.json"]),
    ("rules-file", "svctrace rules --rules tests/fixtures/rig-v1.36/node1.iptables-save.t",
     ["tests/fixtures/rig-v1.36/node1.iptables-save.txt"]),
    ("rules-names", f"svctrace rules --rules {RULES.relative_to(ROOT)} svc/web",
     ["svc/web", "svc/web-np"]),
    ("output", "svctrace explain -o y", ["yaml"]),
    ("no-cluster", "svctrace explain svc/", []),
    ("kubectl-plugin-name", f"kubectl-svctrace explain --snapshot {S} w", ["web", "web-np"]),
]


@pytest.mark.parametrize("line, expected", [c[1:] for c in BASH_CASES],
                         ids=[c[0] for c in BASH_CASES])
def test_bash(line: str, expected: list[str], user_env: dict[str, str]) -> None:
    assert bash_complete(line, user_env) == expected


def test_bash_without_bash_completion(user_env: dict[str, str]) -> None:
    """The script also works in a bare bash (no _init_completion)."""
    line = f"svctrace explain --snapshot={S} -n svctrace-demo svc/e"
    words = readline_words(line)
    driver = BASH_DRIVER.replace('source "$1"\n', "")
    proc = run(["bash", "--norc", "--noprofile", "-c", driver, "bash", "unused",
                str(BASH_SCRIPT), line, str(len(words) - 1), *words], env=user_env)
    assert proc.stdout.split() == ["svc/ext-db"] and proc.stderr == ""


# --- fish ---------------------------------------------------------------------------------

FISH_CASES = [
    ("svc-prefix", f"svctrace explain --snapshot {S} svc/w", ["svc/web", "svc/web-np"]),
    ("bare", f"svctrace explain --snapshot {S} e", ["ext-db"]),
    ("commands", "svctrace sn", ["snapshot"]),
    ("namespaces", f"svctrace explain --snapshot {S} -n ", ["svctrace-demo"]),
    ("file", "svctrace explain --snapshot tests/fixtures/rig-v1.36/api/al",
     ["tests/fixtures/rig-v1.36/api/all.json"]),
    ("nothing", "svctrace explain svc/", []),
]


@pytest.mark.parametrize("line, expected", [c[1:] for c in FISH_CASES],
                         ids=[c[0] for c in FISH_CASES])
def test_fish(line: str, expected: list[str], user_env: dict[str, str]) -> None:
    need("fish")
    command = f"source {ROOT / 'completions/svctrace.fish'}; complete -C {fish_quote(line)}"
    proc = run(["fish", "--no-config", "-c", command], env=user_env)
    assert proc.returncode == 0 and proc.stderr == ""
    assert [c.split("\t", 1)[0] for c in proc.stdout.splitlines()] == expected


def test_fish_shows_help_next_to_options(user_env: dict[str, str]) -> None:
    need("fish")
    command = f"source {ROOT / 'completions/svctrace.fish'}; complete -C 'svctrace explain --fail'"
    out = run(["fish", "--no-config", "-c", command], env=user_env).stdout
    assert out.startswith("--fail-on\tExit 1 when a finding reaches this severity")


def fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# --- interactive shells in tmux -----------------------------------------------------------

# what the shell in tmux inherits (env -i drops the rest, as a login would)
SHELL_ENVIRONMENT = ("PATH", "HOME", "XDG_CACHE_HOME", "LC_ALL", "PYTHONPATH", "KUBECONFIG",
                     "SVCTRACE_COMPLETION_TIMEOUT", "no_proxy", "NO_PROXY")


class Tmux:
    """A shell in a detached tmux session: type keys, read the screen."""

    def __init__(self, shell: list[str], env: dict[str, str]) -> None:
        need("tmux")
        self.name = f"svctrace-{uuid.uuid4().hex[:8]}"
        self.env = env
        env_args = [f"{k}={v}" for k, v in env.items() if k in SHELL_ENVIRONMENT]
        self.tmux(["new-session", "-d", "-s", self.name, "-x", "200", "-y", "50", "env", "-i",
                   "TERM=screen", *env_args, *shell])

    def tmux(self, args: list[str]) -> str:
        proc = subprocess.run(["tmux", "-L", "svctrace-tests", *args], capture_output=True,
                              text=True, env=self.env, timeout=10, cwd=ROOT)
        return proc.stdout

    def send(self, *keys: str) -> None:
        self.tmux(["send-keys", "-t", self.name, *keys])

    def screen(self) -> str:
        return self.tmux(["capture-pane", "-p", "-N", "-t", self.name])

    def wait_for(self, pattern: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.screen()
            if re.search(pattern, text, re.MULTILINE):
                return text
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} never appeared on the screen:\n{self.screen()}")

    def close(self) -> None:
        self.tmux(["kill-session", "-t", self.name])


@pytest.fixture
def tmux_shell(user_env: dict[str, str]):  # type: ignore[no-untyped-def]
    shells: list[Tmux] = []

    def start(shell: list[str], setup: str) -> Tmux:
        term = Tmux(shell, user_env)
        shells.append(term)
        term.send(f"cd {ROOT}; {setup}; PS1='READY> '; PROMPT='READY> '; clear", "Enter")
        term.wait_for(r"^READY> $")
        return term

    yield start
    for term in shells:
        term.close()


def test_bash_interactive_tab(tmux_shell) -> None:  # type: ignore[no-untyped-def]
    need("bash")
    term = tmux_shell(["bash", "--norc", "--noprofile"],
                      f"source {BASH_COMPLETION}; source {BASH_SCRIPT}")
    term.send(f"svctrace explain --snapshot {S} svc/no", "Tab")
    term.wait_for(r"svc/noendpoints $")                        # unique: completed, a space
    term.send("C-u")
    term.send(f"svctrace explain --snapshot {S} svc/we", "Tab")
    term.wait_for(r"svc/web *$")                               # the common part is inserted
    term.send("Tab", "Tab")                                    # a bell, then the list
    screen = term.wait_for(r"^svc/web\s+svc/web-np\s*$")
    assert "error" not in screen.lower() and "Traceback" not in screen


def test_zsh_interactive_tab(tmux_shell) -> None:  # type: ignore[no-untyped-def]
    need("zsh")
    term = tmux_shell(["zsh", "-f"], "autoload -Uz compinit && compinit -u -D; "
                      f"source {ROOT / 'completions/svctrace.zsh'}")
    term.send(f"svctrace explain --snapshot {S} svc/no", "Tab")
    term.wait_for(r"svc/noendpoints $")
    term.send("C-u")
    term.send(f"svctrace explain --snapshot {S} -n ", "Tab")
    term.wait_for(r"-n svctrace-demo $")
    term.send("C-u")
    term.send("svctrace expl", "Tab")
    term.wait_for(r"READY> svctrace explain *$")


def test_scripts_parse(user_env: dict[str, str]) -> None:
    for shell, flag in (("bash", "-n"), ("zsh", "-n"), ("fish", "--no-execute")):
        need(shell)
        path = ROOT / f"completions/svctrace.{shell}"
        proc = run([shell, flag, str(path)], env=user_env)
        assert proc.returncode == 0, proc.stderr
