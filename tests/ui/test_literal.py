"""What the cluster or the rules say is printed literally: never as rich markup, never as
terminal control (ESC sequences), and every suggested command is shell-quoted.

The judges are rich itself (rendering crafted objects to a colour terminal), the CLI run as a
user runs it, and bash running the suggested commands (with a `kubectl` that only echoes its
arguments)."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ui_helpers import RULES, SNAPSHOT, run

from svctrace.cli.env import Environment
from svctrace.cluster.snapshot import read_snapshot, view_from_snapshot
from svctrace.diagnose.cluster import explain_cluster
from svctrace.model.findings import Finding, Severity
from svctrace.render.cluster import cluster_renderables, findings_renderable
from svctrace.render.literal import printable

ESC_CLEAR = "\x1b[2J"
ESC_TITLE = "\x1b]0;pwned\x07"
# what rich's own colour codes look like; anything else starting with ESC came from data
RICH_SGR = re.compile(r"\x1b\[[0-9;]*m")


def raw_escapes(text: str) -> list[str]:
    """ESC sequences in `text` that are not rich's colour codes."""
    return re.findall(r"\x1b.{0,6}", RICH_SGR.sub("", text))


def render(parts: list[Any]) -> str:
    """What a colour terminal receives for these renderables."""
    out = io.StringIO()
    console = Environment(stdout=out, color="always").console()
    for part in parts:
        console.print(part)
    return out.getvalue()


def web_view(pods: Any = None, **service_changes: Any) -> Any:
    """The rig's `web` Service with `service_changes`, and `pods` as the selected pods."""
    view = view_from_snapshot(read_snapshot(str(SNAPSHOT)), "web", "svctrace-demo")
    service = dataclasses.replace(view.service, **service_changes)
    return dataclasses.replace(view, service=service,
                               pods=view.pods if pods is None else pods)


def suggested_commands(**changes: Any) -> list[str]:
    """The commands of the findings of the changed Service in the situations that have one:
    as it is, selecting no pod, a targetPort no pod exposes, without a selector, and as an
    ExternalName."""
    ports = web_view().service.ports
    unexposed = tuple(dataclasses.replace(sp, target_port="nosuchport") for sp in ports)
    views = [web_view(**changes), web_view(pods=(), **changes),
             web_view(**{"ports": unexposed, **changes}), web_view(**{**changes, "selector": {}}),
             web_view(**{"type": "ExternalName", "external_name": "x.example", **changes})]
    return [f.command for v in views for f in explain_cluster(v).findings if f.command]


@pytest.mark.parametrize("value", [
    "a\x1b[2Jb", "tab\there", "line\nbreak", "bell\x07", "del\x7f", "c1\x9b2J",
    "bidi\u202egnp.exe", "plain text [bold]not markup[/] ünïcödé",
], ids=["esc", "tab", "newline", "bell", "del", "c1-csi", "bidi-override", "plain"])
def test_printable_leaves_no_control_character(value: str) -> None:
    shown = printable(value)
    assert not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f or 0x202a <= ord(c) <= 0x202e
                   for c in shown)
    if value.isprintable():
        assert shown == value                 # printable text is left exactly as it is


@pytest.mark.parametrize("name", ["web[bold red]x", "web[/]x", "web[link=http://x]y[/link]",
                                  f"web{ESC_CLEAR}x"],
                         ids=["style", "closing-tag", "link", "esc"])
def test_service_name_is_printed_literally(name: str) -> None:
    ex = explain_cluster(web_view(name=name))
    out = render([*cluster_renderables(ex), findings_renderable(ex.findings)])
    assert printable(name) in RICH_SGR.sub("", out)
    assert raw_escapes(out) == []


def test_container_reason_with_markup_does_not_break_the_renderer() -> None:
    view = web_view()
    pod = view.pods[0]
    status = dataclasses.replace(pod.container_statuses[0], state="waiting",
                                 state_reason="Crash[/]Loop",
                                 last_termination_reason=f"OOM{ESC_TITLE}Killed")
    view = dataclasses.replace(view, pods=(dataclasses.replace(
        pod, container_statuses=(status,)), *view.pods[1:]))
    out = RICH_SGR.sub("", render(cluster_renderables(explain_cluster(view))))
    assert "Crash[/]Loop" in out
    assert "OOM\\x1b]0;pwned\\x07Killed" in out
    assert "\x1b" not in out


def test_finding_text_and_the_console_backstop() -> None:
    """Findings are escaped by the renderer; a plain string a renderer forgot is escaped by
    the console itself, without touching rich's colour codes."""
    finding = Finding("X-TEST", Severity.ERROR, f"msg{ESC_CLEAR}", (f"ev[red]{ESC_TITLE}",),
                      "kubectl get svc")
    out = render([findings_renderable([finding]), f"forgotten{ESC_CLEAR}"])
    assert RICH_SGR.search(out)                          # still coloured
    assert raw_escapes(out) == []
    assert "msg\\x1b[2J" in out and "ev[red]\\x1b]0;pwned\\x07" in out
    assert "forgotten\\x1b[2J" in out


HOSTILE = {"name": "web;touch pwned;#", "namespace": "ns$(touch pwned)",
           "selector": {"app": "web`touch pwned`"}}


@pytest.mark.parametrize("changes", [
    {"name": HOSTILE["name"]},
    {"namespace": HOSTILE["namespace"]},
    {"name": "no-pods", "selector": HOSTILE["selector"]},
    {"name": "web' 'x", "namespace": "a b"},
], ids=["name", "namespace", "selector", "quotes-and-blanks"])
def test_suggested_commands_are_shell_quoted(changes: dict[str, Any], tmp_path: Path) -> None:
    commands = suggested_commands(**changes)
    assert {c.split()[2] for c in commands} == {"service", "pods", "endpointslices"}
    for command in commands:
        words = run_as_pasted(command, tmp_path)
        for value in [changes.get("namespace"), *changes.get("selector", {}).values()]:
            if value and value in command:
                assert any(value in w for w in words)


def run_as_pasted(command: str, tmp_path: Path) -> list[str]:
    """What `command` passes to kubectl when pasted into bash (with a `kubectl` that prints
    its arguments one a line); asserts that it ran nothing else."""
    proc = subprocess.run(
        ["bash", "-c", 'kubectl() { printf "%s\\n" "$@"; }\n' + command],
        capture_output=True, text=True, cwd=tmp_path, timeout=10)
    assert proc.returncode == 0, (command, proc.stderr)
    assert not (tmp_path / "pwned").exists(), command
    words = proc.stdout.splitlines()
    assert words == shlex.split(command)[1:]
    return words


def test_doctor_commands_are_shell_quoted(tmp_path: Path) -> None:
    from svctrace.diagnose.doctor import unreadable
    from svctrace.explain.doctor import _forbidden_findings

    node, ns = "node1;touch pwned", "ns$(touch pwned)"
    state = read_snapshot(str(SNAPSHOT))
    node_command = unreadable(node, "exec failed").findings[0].command
    ns_command = _forbidden_findings({ns: "403 Forbidden"}, state)[0].command
    assert node_command and ns_command
    assert f"spec.nodeName={node}" in run_as_pasted(node_command, tmp_path)
    assert ns in run_as_pasted(ns_command, tmp_path)


def hostile_files(tmp_path: Path) -> tuple[Path, Path]:
    """The rig's snapshot with a crash-looping pod whose reasons hold markup and ESC, and the
    node's rules with ESC sequences in the web Service's comments."""
    doc = json.loads(SNAPSHOT.read_text())
    for item in doc["items"]:
        if item["kind"] == "Pod" and item["metadata"]["name"] == "web-0":
            status = item["status"]["containerStatuses"][0]
            status["state"] = {"waiting": {"reason": "Crash[/]Loop"}}
            status["lastState"] = {"terminated": {"reason": f"OOM{ESC_TITLE}", "exitCode": 137}}
    snapshot = tmp_path / "hostile.json"
    snapshot.write_text(json.dumps(doc))
    rules = tmp_path / "hostile.rules"
    rules.write_text(RULES.read_text().replace('"svctrace-demo/web:http"',
                                               f'"svctrace-demo/web:http{ESC_CLEAR}"'))
    return snapshot, rules


@pytest.mark.parametrize("args", [
    ["explain", "web", "-n", "svctrace-demo", "--raw", "-o", "wide"],
    ["rules", "-o", "wide"],
    ["trace", "--dst", "10.96.219.159:80", "-o", "wide"],
], ids=["explain", "rules", "trace"])
def test_cli_text_output_is_literal(args: list[str], tmp_path: Path,
                                    user_env: dict[str, str]) -> None:
    snapshot, rules = hostile_files(tmp_path)
    extra = ["--snapshot", str(snapshot)] if args[0] == "explain" else []
    proc = run([sys.executable, "-m", "svctrace", *args, *extra, "--rules", str(rules),
                "--color", "always"], env={**user_env, "SVCTRACE_NO_LOCAL_RULES": "1"})
    assert proc.returncode in (0, 1), proc.stderr
    assert raw_escapes(proc.stdout) == [] and raw_escapes(proc.stderr) == []
    assert "\\x1b[2J" in proc.stdout
    if args[0] == "explain":
        assert "Crash[/]Loop" in proc.stdout and "\\x1b]0;pwned\\x07" in proc.stdout


def test_json_keeps_the_data_as_it_is(tmp_path: Path, user_env: dict[str, str]) -> None:
    snapshot, rules = hostile_files(tmp_path)
    proc = run([sys.executable, "-m", "svctrace", "explain", "web", "-n", "svctrace-demo",
                "--snapshot", str(snapshot), "--rules", str(rules), "-o", "json"],
               env={**user_env, "SVCTRACE_NO_LOCAL_RULES": "1"})
    assert "\x1b" not in proc.stdout                     # JSON escapes it as \u001b
    pods = json.loads(proc.stdout)["pods"]
    reasons = [c["lastTerminationReason"] for p in pods for c in p["containers"]]
    assert f"OOM{ESC_TITLE}" in reasons


def test_error_lines_are_escaped(user_env: dict[str, str]) -> None:
    proc = run([sys.executable, "-m", "svctrace", "trace", "--rules",
                f"/nonexistent{ESC_CLEAR}", "--dst", "10.0.0.1:80"], env=user_env)
    assert proc.returncode == 5
    assert proc.stderr == "svctrace: error: /nonexistent\\x1b[2J: no such file\n"
