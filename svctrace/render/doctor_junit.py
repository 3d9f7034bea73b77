"""doctor's report as JUnit XML (`-o junit`), the format CI systems render.

One test suite for the Services (a test case per Service checked) and one for the nodes (a
test case per node read or failed); a run-level finding (a namespace that could not be read)
is a test case of its own. Each finding at or above --fail-on is a <failure> of its test case
(type: the finding id); the findings below it and the verdict are in <system-out>. Never prints.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from svctrace.diagnose.doctor import DoctorReport
from svctrace.model.findings import Finding, Severity
from svctrace.render.doctor import explain_command
from svctrace.render.literal import printable_lines


def doctor_junit(report: DoctorReport, fail_on: str) -> str:
    """The JUnit XML document (UTF-8 text)."""
    threshold = None if fail_on == "none" else Severity.parse(fail_on)
    root = ET.Element("testsuites", name="svctrace doctor")
    services = _suite(root, "svctrace.doctor.services")
    for row in sorted(report.rows, key=lambda r: (r.namespace, r.name)):
        lines = [f"verdict: {row.verdict}", f"explain: {explain_command(report, row)}"]
        _case(services, f"svctrace.doctor.services.{row.namespace}", f"{row.namespace}/{row.name}",
              row.findings, threshold, lines)
    if report.nodes:
        nodes = _suite(root, "svctrace.doctor.nodes")
        for node in report.nodes:
            lines = [f"mode: {node.mode or '-'}", f"source: {node.source or '-'}"]
            _case(nodes, "svctrace.doctor.nodes", node.name, node.findings, threshold, lines)
    if report.findings:
        run = _suite(root, "svctrace.doctor.run")
        for f in report.findings:
            _case(run, "svctrace.doctor.run", f.message.split(":", 1)[0], [f], threshold, [])
    if report.interrupted:
        root.set("interrupted", "true")
    _totals(root)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def _suite(root: ET.Element, name: str) -> ET.Element:
    return ET.SubElement(root, "testsuite", name=name)


def _case(suite: ET.Element, classname: str, name: str, findings: list[Finding],
          threshold: Severity | None, lines: list[str]) -> None:
    case = ET.SubElement(suite, "testcase", classname=classname, name=_clean(name), time="0")
    below = []
    for f in findings:
        if threshold is not None and f.severity >= threshold:
            failure = ET.SubElement(case, "failure", type=f.id,
                                    message=_clean(f"{f.severity}: {f.message}"))
            failure.text = _clean("\n".join([*f.evidence, *([f"$ {f.command}"]
                                                             if f.command else [])]))
        else:
            below.append(f"{f.severity} {f.id}: {f.message}")
    out = ET.SubElement(case, "system-out")
    out.text = _clean("\n".join([*lines, *below]))


def _totals(root: ET.Element) -> None:
    tests = failures = 0
    for suite in root:
        cases = suite.findall("testcase")
        failed = sum(1 for c in cases if c.find("failure") is not None)
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(failed))
        suite.set("errors", "0")
        suite.set("skipped", "0")
        tests, failures = tests + len(cases), failures + failed
    root.set("tests", str(tests))
    root.set("failures", str(failures))
    root.set("errors", "0")


def _clean(text: str) -> str:
    """XML 1.0 cannot hold most control characters: show them as escapes (not newlines)."""
    return printable_lines(text)
