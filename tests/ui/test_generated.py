"""Generated files are current, and the man page renders cleanly."""

from __future__ import annotations

import pytest
from ui_helpers import ROOT, need, run, script

MAN = ROOT / "man/svctrace.1"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_are_current(shell: str, user_env: dict[str, str]) -> None:
    proc = run([script("svctrace"), "completion", shell], env=user_env)
    assert proc.returncode == 0 and proc.stderr == ""
    committed = (ROOT / f"completions/svctrace.{shell}").read_text()
    assert proc.stdout == committed, (f"completions/svctrace.{shell} is stale: run "
                                      f"svctrace completion {shell} > completions/svctrace.{shell}")


def test_man_page_is_current(user_env: dict[str, str]) -> None:
    import sys
    proc = run([sys.executable, "-m", "svctrace.cli.manpage"], env=user_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == MAN.read_text(), ("man/svctrace.1 is stale: run "
                                            "python -m svctrace.cli.manpage > man/svctrace.1")


def test_man_page_has_no_groff_warnings(user_env: dict[str, str]) -> None:
    need("groff")
    proc = run(["groff", "-ww", "-man", "-Tutf8", str(MAN)], env=user_env)
    assert proc.returncode == 0 and proc.stderr == ""


def test_man_renders_every_command_and_section(user_env: dict[str, str]) -> None:
    need("man")
    proc = run(["man", "-l", str(MAN)], env={**user_env, "MANPAGER": "cat", "MANWIDTH": "100"})
    assert proc.returncode == 0 and proc.stderr == ""
    text = proc.stdout
    for heading in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "EXIT STATUS", "ENVIRONMENT",
                    "FILES", "EXAMPLES"):
        assert f"\n{heading}\n" in text, heading
    for command in ("explain", "rules", "trace", "snapshot", "completion"):
        assert f"svctrace {command}" in text
    flat = " ".join(text.split())
    for words in ("--snapshot FILE", "--fail-on SEVERITY", "Default: error.", "KUBECONFIG",
                  "NO_COLOR", "SVCTRACE_DEBUG", "SVCTRACE_NO_LOCAL_RULES", "no_proxy", "130"):
        assert words in flat, words
    assert "__complete" not in text


def test_every_option_is_in_the_man_page() -> None:
    from svctrace.cli.manpage import cli_root
    text = MAN.read_text().replace("\\-", "-")
    root = cli_root()
    for name, command in root.commands.items():
        if command.hidden:
            continue
        for param in command.params:
            for opt in (*param.opts, *param.secondary_opts):
                if opt.startswith("-"):
                    assert f"\\fB{opt}\\fR" in text, f"{name} {opt}"


def test_help_points_to_the_man_page(user_env: dict[str, str]) -> None:
    proc = run([script("svctrace"), "--help"], env=user_env)
    assert proc.returncode == 0 and "man svctrace" in proc.stdout
