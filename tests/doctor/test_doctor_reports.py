"""`-o junit` read back by an independent JUnit reader (junitparser), and `-o html` loaded in a
real headless Chromium: it renders, the table holds the expected rows and sorts, the diagrams
are there with the failing hop marked, no console errors, no request but the file itself."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from browser import Page, chromium_path
from clusterkit import run_cli
from doctorkit import PUB, SCENARIOS, SCENARIOS_NODE1

API = SCENARIOS / "api" / "all.json"


@pytest.fixture(scope="module")
def drifted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The scenarios capture where the API dropped ledger's endpoint 10.244.1.57 that node1's
    rules still DNAT to (a stale endpoint), and node1's real rules."""
    tmp = tmp_path_factory.mktemp("drift")
    doc = json.loads(API.read_text())
    for item in doc["items"]:
        if item["kind"] == "EndpointSlice" and item["metadata"]["name"] == "ledger-vhfzg":
            item["endpoints"] = [e for e in item["endpoints"] if e["addresses"] != ["10.244.1.57"]]
    api, rules = tmp / "api.json", tmp / "node1.txt"
    api.write_text(json.dumps(doc))
    rules.write_bytes(SCENARIOS_NODE1)
    return api, rules


def report(fmt: str, api: Path, rules: Path, *extra: str) -> str:
    proc = run_cli("doctor", "--snapshot", str(api), "--rules", f"node1={rules}", "-o", fmt,
                   *extra)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.stdout


def expected_rows(api: Path, rules: Path, *extra: str) -> list[dict[str, Any]]:
    return json.loads(report("json", api, rules, *extra))["services"]  # type: ignore[no-any-return]


# --- JUnit ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fail_on", ["error", "warning", "info", "none"])
def test_junit_has_a_case_per_service_and_node_and_a_failure_per_finding(
        drifted: tuple[Path, Path], tmp_path: Path, fail_on: str) -> None:
    from junitparser import Failure, JUnitXml

    path = tmp_path / "svctrace.xml"
    path.write_text(report("junit", *drifted, "--fail-on", fail_on))
    xml = JUnitXml.fromfile(str(path))
    suites = {s.name: s for s in xml}
    services = {c.name: c for c in suites["svctrace.doctor.services"]}
    rows = {f"{r['namespace']}/{r['name']}": r for r in expected_rows(*drifted, "--all")}
    assert sorted(services) == sorted(rows)
    order = ["info", "warning", "error"]
    for name, case in services.items():
        want = sorted(f["id"] for f in rows[name]["findings"] if fail_on != "none"
                      and order.index(f["severity"]) >= order.index(fail_on))
        got = sorted(r.type for r in case.result if isinstance(r, Failure))
        assert got == want, name
    [node1] = list(suites["svctrace.doctor.nodes"])
    assert node1.name == "node1" and node1.is_passed
    failing = sum(1 for c in services.values() if not c.is_passed)
    assert suites["svctrace.doctor.services"].failures == failing
    assert (failing > 0) == (fail_on != "none")


def test_junit_names_the_stale_endpoint(drifted: tuple[Path, Path], tmp_path: Path) -> None:
    from junitparser import Failure, JUnitXml

    path = tmp_path / "svctrace.xml"
    path.write_text(report("junit", *drifted))
    services = {c.name: c for s in JUnitXml.fromfile(str(path)) for c in s}
    [stale] = [r for r in services[f"{PUB}/ledger"].result
               if isinstance(r, Failure) and r.type == "RULES-STALE-ENDPOINT"]
    assert "on 1/1 node(s): node1" in stale.message
    assert "10.244.1.57:8443" in stale.text


# --- HTML in headless Chromium ----------------------------------------------------------------

@pytest.fixture(scope="module")
def page(drifted: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Any:
    if chromium_path() is None and not os.environ.get("CI"):
        pytest.skip("chromium is not installed (.ci/run installs it)")
    html = tmp_path_factory.mktemp("html") / "report.html"
    html.write_text(report("html", *drifted))
    with Page() as tab:
        tab.load(html)
        tab.html_path = html          # type: ignore[attr-defined]
        yield tab


def test_the_page_loads_nothing_but_itself_and_logs_no_error(page: Any) -> None:
    assert page.requests() == [page.html_path.resolve().as_uri()]
    assert page.errors() == []
    text = page.html_path.read_text()
    assert "http://" not in text and "https://" not in text
    assert "<link" not in text and " src=" not in text and "url(" not in text


def test_the_table_holds_the_services_with_findings_worst_first(
        page: Any, drifted: tuple[Path, Path]) -> None:
    rows = expected_rows(*drifted)
    got = page.evaluate('Array.from(document.querySelectorAll("#services tbody tr"))'
                        '.map(r => Array.from(r.cells).map(c => c.textContent))')
    assert [r[1] for r in got] == [f"{r['namespace']}/{r['name']}" for r in rows]
    assert [r[0] for r in got] == [r["severity"] for r in rows]
    assert [r[5] for r in got] == [r["explain"] for r in rows]


def test_clicking_a_heading_sorts_the_table(page: Any, drifted: tuple[Path, Path]) -> None:
    names = sorted(f"{r['namespace']}/{r['name']}" for r in expected_rows(*drifted))
    column = ('Array.from(document.querySelectorAll("#services tbody tr td:nth-child(2)"))'
              ".map(c => c.textContent)")
    page.evaluate('document.querySelector("#services th:nth-child(2) button").click()')
    assert page.evaluate(column) == names
    page.evaluate('document.querySelector("#services th:nth-child(2) button").click()')
    assert page.evaluate(column) == names[::-1]
    assert page.errors() == []


def test_each_broken_service_has_a_diagram_with_the_failing_hop_marked(
        page: Any, drifted: tuple[Path, Path]) -> None:
    rows = expected_rows(*drifted)
    with_path = [r for r in rows if r["type"] != "ExternalName" and
                 "headless" not in r["verdict"]]
    sections = page.evaluate('Array.from(document.querySelectorAll("section.service"))'
                             '.map(s => [s.id, s.querySelectorAll("svg.path").length])')
    assert len(sections) == len(rows)
    assert sum(n for _, n in sections) == len(with_path)
    ledger = texts(page, "svc-svctrace-pub.ledger", "svg rect.fail + text")
    assert ledger == ["KUBE-SVC-KQHZTY2FYXPTUSEU", "10.244.1.57:8443 (stale)"]
    assert texts(page, "svc-svctrace-pub.ledger", "svg text.label") == ["50%", "50%"]
    assert texts(page, "svc-svctrace-pub.billing", "svg rect.fail + text") == ["no endpoints"]
    # the diagram is laid out: it has a size on the page
    size = page.evaluate(f"(() => {{ const r = document.querySelector("
                         f"{json.dumps(section('svc-svctrace-pub.ledger') + ' svg')})"
                         ".getBoundingClientRect(); return [r.width, r.height]; })()")
    assert size[0] > 300 and size[1] > 60


def section(anchor: str) -> str:
    return f'section[id="{anchor}"]'


def texts(page: Any, anchor: str, selector: str) -> list[str]:
    """The text of every element matching `selector` in the section of one Service."""
    query = json.dumps(f"{section(anchor)} {selector}")
    return page.evaluate(  # type: ignore[no-any-return]
        f"Array.from(document.querySelectorAll({query})).map(t => t.textContent)")


def test_screenshot(page: Any, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    page.screenshot(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_the_page_reads_the_same_without_javascript(drifted: tuple[Path, Path],
                                                    page: Any) -> None:
    with Page() as tab:
        tab.call("Emulation.setScriptExecutionDisabled", value=True)
        tab.load(page.html_path)
        dom = tab.call("DOM.getDocument", depth=-1)
        html = tab.call("DOM.getOuterHTML", nodeId=dom["root"]["nodeId"])["outerHTML"]
    assert html.count('<section id="svc-') == len(expected_rows(*drifted))
    assert html.count("<tr>") > len(expected_rows(*drifted))
    assert "svctrace-pub/ledger" in html and "<svg" in html


ESC = "\x1b[2J"


def test_text_output_prints_the_cluster_literally(tmp_path: Path) -> None:
    # a not-ready inventory pod whose waiting reason holds rich markup and an ESC sequence
    doc = json.loads(API.read_text())
    for item in doc["items"]:
        if item["kind"] == "Pod" and item["metadata"]["name"] == "inventory-d5c8b9f74-x4p9s":
            item["status"]["containerStatuses"][0]["state"] = {
                "waiting": {"reason": f"Crash[/]Loop{ESC}"}}
    hostile = tmp_path / f"snap{ESC}.json"
    hostile.write_text(json.dumps(doc))
    proc = run_cli("doctor", "--snapshot", str(hostile), "--color", "always")
    assert proc.returncode == 1, proc.stderr
    plain = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout)       # rich's own colours
    assert "\x1b" not in plain
    assert "snap\\x1b[2J.json" in plain
    html = run_cli("doctor", "--snapshot", str(hostile), "-o", "html").stdout
    assert ESC not in html
