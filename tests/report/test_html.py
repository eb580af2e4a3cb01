"""The HTML reports: what they contain, that they escape what runs put in them,
and that a real headless Chromium lays them out."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

import racefree
from racefree.cli import main
from racefree.report.html import check_html, demo_html, svg_lanes
from racefree.scenarios import agent_names, lesson01
from racefree.scenarios.demo import run_demo


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text, of a parsed page."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def having(self, tag: str, css: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and css in (a.get("class") or "").split()]


@pytest.fixture(scope="module")
def demo_page() -> tuple[Any, str]:
    run = run_demo(agent_names(3), seed=0, time_scale=0.01)
    return run, demo_html(run)


def test_the_demo_page_has_a_section_and_a_timeline_per_run(demo_page: tuple[Any, str]) -> None:
    run, page = demo_page
    parsed = Elements(page)
    sections = parsed.having("section", "result")
    assert [s["data-scenario"] for s in sections] == [r.scenario for r in run.results]
    flows = [run.sequential, *run.parallel, run.fixed]
    assert len(parsed.having("svg", "lanes")) >= len(flows)


def test_lost_agents_are_marked_lost_in_the_timelines(demo_page: tuple[Any, str]) -> None:
    run, page = demo_page
    parsed = Elements(page)
    marked = len(parsed.having("line", "lost"))
    assert marked == sum(len(r.lost_agents) for r in run.results if r.history.events)
    assert marked >= 2 * len(run.parallel)


def test_the_summary_table_marks_inconsistent_runs(demo_page: tuple[Any, str]) -> None:
    run, page = demo_page
    parsed = Elements(page)
    assert len(parsed.having("tr", "bad")) == sum(not r.consistent for r in run.results)


def test_everything_from_a_run_is_escaped() -> None:
    history = racefree.History()
    evil = "<script>alert(1)</script>"
    history.record("read", "k&<b>", agent=evil)
    history.record("write", "k&<b>", agent=evil, version_read=0, version_written=1)
    page = check_html(history, racefree.check(history), source="<i>file</i>")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<i>" not in page


def test_no_events_draw_no_timeline() -> None:
    assert svg_lanes(["A"], []) == ""


def test_check_html_shows_each_finding_with_its_story(tmp_path: Path) -> None:
    result = lesson01.run_broken_parallel(agent_names(3), seed=2, time_scale=0.01)
    report = racefree.check(result.history)
    parsed = Elements(check_html(result.history, report))
    findings = parsed.having("section", "finding")
    assert len(findings) == len(report.findings) >= 1
    assert {f["data-kind"] for f in findings} == {f.kind for f in report.findings}
    lost_labels = [a for a in parsed.having("text", "lost") if a.get("x")]
    assert lost_labels  # the lost agents' lanes are labelled


def test_the_cli_writes_html_for_demo_and_check(tmp_path: Path) -> None:
    demo = tmp_path / "demo.html"
    assert main(["demo", "--time-scale", "0.01", "--seed", "1", "--html", str(demo)]) == 0
    assert demo.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    history = tmp_path / "h.jsonl"
    lesson01.run_broken_parallel(agent_names(3), seed=1, time_scale=0.01).history.to_jsonl(history)
    page = tmp_path / "check.html"
    assert main(["check", str(history), "--html", str(page)]) == 1
    assert "lost update" in page.read_text(encoding="utf-8")


def test_an_unwritable_html_path_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "missing" / "demo.html"
    assert main(["demo", "--html", str(target)]) == 2
    assert capsys.readouterr().err == (
        f"racefree: error: Cannot write {target}: give a file in an existing folder you can "
        "write to.\n"
    )


# --- in a real browser -----------------------------------------------------------------

BROWSER = next(
    (found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None
)

MEASURE = """<script>
const box = (e) => { const r = e.getBoundingClientRect(); return [r.width, r.height]; };
const out = {
  lanes: [...document.querySelectorAll("svg.lanes")].map(box),
  lostLabels: [...document.querySelectorAll("svg.lanes text.lost")]
    .filter((t) => t.textContent === "lost").map(box),
  badRows: [...document.querySelectorAll("tr.bad")].map((r) => getComputedStyle(r.cells[0]).color),
  overflow: document.documentElement.scrollWidth - window.innerWidth,
};
const pre = document.createElement("pre");
pre.id = "measured";
pre.textContent = JSON.stringify(out);
document.body.append(pre);
</script>"""


def measure_in_browser(page: str, tmp_path: Path) -> dict[str, Any]:
    """Load ``page`` in headless Chromium and return what the browser laid out."""
    assert BROWSER is not None
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    done = subprocess.run(
        [
            BROWSER,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1100,900",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    start = done.stdout.index('<pre id="measured">') + len('<pre id="measured">')
    measured: dict[str, Any] = json.loads(done.stdout[start : done.stdout.index("</pre>", start)])
    return measured


needs_browser = pytest.mark.skipif(
    BROWSER is None,
    reason="no Chromium on PATH; `make test` installs it (apt-get install chromium)",
)


@needs_browser
def test_a_browser_draws_every_timeline_and_the_lost_labels(
    demo_page: tuple[Any, str], tmp_path: Path
) -> None:
    run, page = demo_page
    measured = measure_in_browser(page, tmp_path)
    assert measured["lanes"], "no timeline was laid out"
    assert all(width > 200 and height > 40 for width, height in measured["lanes"])
    lost = sum(len(r.lost_agents) for r in run.results if r.history.events)
    assert len(measured["lostLabels"]) == lost
    assert all(width > 0 for width, _ in measured["lostLabels"])


@needs_browser
def test_a_browser_shows_inconsistent_rows_in_red_and_nothing_overflows(
    demo_page: tuple[Any, str], tmp_path: Path
) -> None:
    run, page = demo_page
    measured = measure_in_browser(page, tmp_path)
    assert measured["badRows"] == ["rgb(180, 35, 24)"] * sum(not r.consistent for r in run.results)
    assert measured["overflow"] <= 0


def test_explore_writes_the_failing_run_as_html(tmp_path: Path) -> None:
    page = tmp_path / "failure.html"
    argv = ["explore", "racefree.explore.lessons:unsafe", "--schedules", "20"]
    argv += ["--save-dir", str(tmp_path / "replays"), "--html", str(page)]
    assert main(argv) == 1
    text = page.read_text(encoding="utf-8")
    assert "<title>racefree explore racefree.explore.lessons:unsafe</title>" in text
    assert "replay it: racefree replay " in text
    assert "Failed: Invariant nothing_lost failed" in text
    assert len(Elements(text).having("section", "finding")) >= 1


def test_an_invariant_failure_is_the_verdict_even_when_the_checker_finds_nothing() -> None:
    history = racefree.History()
    history.record("append", "log", agent="A", version_read=0, version_written=1)
    page = check_html(history, racefree.check(history), failed="Invariant in_order failed")
    parsed = Elements(page)
    [verdict] = parsed.having("p", "verdict")
    assert "bad" in (verdict.get("class") or "")
    assert "Failed: Invariant in_order failed" in "".join(parsed.text)
    assert "No race found" not in page
