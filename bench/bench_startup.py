"""Start-up benchmark: what a user waits for on --help, --version and one TAB.

    python bench/bench_startup.py [--runs 15] [--strict]

Median of --runs runs (≥ 10) each, in the same run as two floors: `python -c pass`, and a
minimal typer app with one command (written to a temp file), the least our stack can cost.
Targets (issue 5): `svctrace --help` ≤ 200 ms and ≤ 1.2 × the minimal app's --help;
`svctrace --version` ≤ 150 ms; one TAB completing Service names from a snapshot, measured
inside a real bash with bash-completion, ≤ 200 ms (next to the minimal app's own TAB).
--strict exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAPSHOT = "tests/fixtures/rig-v1.36/api/all.json"
BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"

MINIMAL_APP = '''import typer

app = typer.Typer()


@app.command()
def hello(name: str = typer.Option("world", help="Who to greet.")) -> None:
    """Say hello."""
    typer.echo(f"hello {name}")


if __name__ == "__main__":
    app()
'''

# One bash process: source bash-completion and the script, then time N calls of the
# completion function (each runs the program once, as a TAB does) with $EPOCHREALTIME.
BASH_LOOP = r'''
source "$BASH_COMPLETION"
source "$SCRIPT"
for ((i = 0; i < RUNS; i++)); do
    COMP_WORDS=("${WORDS[@]}"); COMP_CWORD=$((${#WORDS[@]} - 1))
    COMP_LINE="${WORDS[*]}"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()
    t0=$EPOCHREALTIME
    "$FUNC" "${WORDS[0]}" "${WORDS[COMP_CWORD]}" "${WORDS[COMP_CWORD-1]}"
    t1=$EPOCHREALTIME
    echo "$t0 $t1 ${#COMPREPLY[@]}"
done
'''


def median_ms(argv: list[str], runs: int, env: dict[str, str]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                       cwd=ROOT, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def bash_tab_ms(script: str, func: str, words: list[str], runs: int, env: dict[str, str],
                expect: int) -> float:
    """Median ms of one TAB (the completion function) inside one real bash."""
    declare = "WORDS=(" + " ".join(f"'{w}'" for w in words) + ")\n"
    out = subprocess.run(["bash", "--norc", "--noprofile", "-c", declare + BASH_LOOP],
                         capture_output=True, text=True, cwd=ROOT, check=True,
                         env={**env, "BASH_COMPLETION": BASH_COMPLETION, "SCRIPT": script,
                              "FUNC": func, "RUNS": str(runs)}).stdout
    rows = [line.split() for line in out.splitlines()]
    found = {int(r[2]) for r in rows}
    if found != {expect}:
        raise SystemExit(f"{func}: expected {expect} candidates, got {sorted(found)}")
    return statistics.median(float(b) - float(a) for a, b, _ in rows) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--strict", action="store_true")
    args = parser.parse_args()
    runs = max(args.runs, 10)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "XDG_CACHE_HOME": tempfile.mkdtemp(prefix="svctrace-bench-cache-")}
    env.pop("KUBECONFIG", None)
    py, svctrace = sys.executable, str(BIN / "svctrace")

    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp, "minimal_app.py")
        app.write_text(MINIMAL_APP)
        typer_script = Path(tmp, "minimal.bash")
        # typer's own bash completion for the minimal app, the floor for one TAB
        typer_script.write_text(
            "_minimal_completion() {\n    local IFS=$'\\n'\n"
            "    COMPREPLY=( $( env COMP_WORDS=\"${COMP_WORDS[*]}\" COMP_CWORD=$COMP_CWORD "
            f"_MINIMAL_APP.PY_COMPLETE=complete_bash {py} {app} ) )\n    return 0\n}}\n")
        figures = {
            "python -c pass": median_ms([py, "-c", "pass"], runs, env),
            "minimal typer app --help": median_ms([py, str(app), "--help"], runs, env),
            "svctrace --help": median_ms([svctrace, "--help"], runs, env),
            "svctrace --version": median_ms([svctrace, "--version"], runs, env),
            "minimal typer app TAB (bash)": bash_tab_ms(
                str(typer_script), "_minimal_completion", ["minimal", "--"], runs,
                {**env, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}, expect=4),
            "svctrace TAB svc/w (bash)": bash_tab_ms(
                str(ROOT / "completions/svctrace.bash"), "_svctrace_complete",
                ["svctrace", "explain", "--snapshot", SNAPSHOT, "svc/w"], runs, env, expect=2),
        }
    return report(figures, runs, args.strict)


def report(figures: dict[str, float], runs: int, strict: bool) -> int:
    print(f"median of {runs} runs, {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}")
    for name, ms in figures.items():
        print(f"  {name:32} {ms:7.1f} ms")
    floor_help = figures["minimal typer app --help"]
    floor_tab = figures["minimal typer app TAB (bash)"]
    ratio = figures["svctrace --help"] / floor_help
    print(f"  ratio svctrace --help / minimal --help   {ratio:.2f}")
    print(f"  ratio svctrace TAB / minimal TAB         "
          f"{figures['svctrace TAB svc/w (bash)'] / floor_tab:.2f}")
    print(f"  svctrace --help above python -c pass     "
          f"{figures['svctrace --help'] - figures['python -c pass']:.1f} ms")
    checks = [("--help ≤ 200 ms", figures["svctrace --help"] <= 200),
              ("--help ≤ 1.2 × minimal app", ratio <= 1.2),
              ("--version ≤ 150 ms", figures["svctrace --version"] <= 150),
              ("TAB ≤ 200 ms", figures["svctrace TAB svc/w (bash)"] <= 200)]
    for name, ok in checks:
        print(f"  {'ok  ' if ok else 'MISS'} {name}")
    return 1 if strict and not all(ok for _, ok in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
