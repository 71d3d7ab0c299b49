"""The report and the served view in real headless Chromium (Debian's /usr/bin/chromium via Playwright).

Each test clicks from the run list to a rollout, applies a filter, asserts on the DOM and saves
a screenshot of every page under its tmp output folder (the path is printed; set
HERMES_VIEW_SCREENSHOTS=DIR to also copy them there). Without Chromium or Playwright these tests
skip, unless HERMES_REQUIRE_BROWSER=1 (set by scripts/suites/view.sh), where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hermes_core.view.cli import main
from hermes_core.view.synthetic import write_synthetic_run

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]


def _unavailable(reason: str) -> None:
    if os.environ.get("HERMES_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests required (HERMES_REQUIRE_BROWSER=1) but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright; never `playwright install`)")
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium fonts-liberation)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, timeout=60_000)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(15_000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.js_errors = errors
    try:
        yield pg
    finally:
        ctx.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


class Shots:
    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.taken: list[Path] = []

    def __call__(self, page: Any, name: str) -> Path:
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path))
        assert path.stat().st_size > 5000  # a rendered page, not a blank one
        self.taken.append(path)
        extra = os.environ.get("HERMES_VIEW_SCREENSHOTS")
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / path.name)
        return path


@pytest.fixture
def shots(tmp_path: Path) -> Iterator[Shots]:
    s = Shots(tmp_path / "screenshots")
    yield s
    print(f"\nscreenshots: {', '.join(str(p) for p in s.taken)}")


def _records(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]


def _visible_rows(page: Any, run: int) -> list[dict[str, str]]:
    return page.eval_on_selector_all(
        f"#rollouts-{run} tr.rollout-row:not(.hidden)",
        "rows => rows.map(r => ({id: r.querySelector('a').textContent, task: r.dataset.task, "
        "passed: r.dataset.passed, infra: r.dataset.infra, reward: r.dataset.reward}))",
    )


def test_static_report_run_list_to_rollout_filters_and_compare(page: Any, shots: Shots, synth_run: Path,
                                                              synth_run_b: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    assert main([str(synth_run), str(synth_run_b), "--out", str(report)]) == 0
    records = _records(synth_run)
    page.goto(report.as_uri())
    assert page.locator("#view-runs").is_visible()
    assert page.locator("#run-list tr.run-row").count() == 2
    shots(page, "static-1-runs")

    page.click("#run-list a.run-link >> nth=0")
    assert page.evaluate("location.hash") == "#run-0"
    assert page.locator("#view-run-0").is_visible() and not page.locator("#view-runs").is_visible()
    assert page.locator("#tasks-0 tr.task-row").count() == 12
    assert page.locator("#tasks-0 thead th", has_text="pass@4").count() == 1
    assert len(_visible_rows(page, 0)) == 48
    shots(page, "static-2-run")

    page.check("#view-run-0 form.filters input[name=failed]")
    rows = _visible_rows(page, 0)
    expected = [r["rollout_id"] for r in records if not (r["reward"] is not None and r["reward"] >= 1.0)]
    assert [r["id"] for r in rows] == expected and all(r["passed"] == "0" for r in rows)
    assert "failed=1" in page.evaluate("location.hash")
    page.select_option("#view-run-0 form.filters select[name=task]", "task-0005")
    rows = _visible_rows(page, 0)
    assert [r["id"] for r in rows] == [r["rollout_id"] for r in records
                                       if r["task_id"] == "task-0005" and not (r["reward"] or 0) >= 1.0]
    page.click("#view-run-0 a.clear-filter")
    page.check("#view-run-0 form.filters input[name=infra]")
    rows = _visible_rows(page, 0)
    assert rows and [r["id"] for r in rows] == [r["rollout_id"] for r in records if r["infra_error"]]
    page.uncheck("#view-run-0 form.filters input[name=infra]")
    page.fill("#view-run-0 form.filters input[name=min]", "0.4")
    page.fill("#view-run-0 form.filters input[name=max]", "0.6")
    page.click("#view-run-0 form.filters button[type=submit]")
    rows = _visible_rows(page, 0)
    assert [r["id"] for r in rows] == [r["rollout_id"] for r in records if r["reward"] is not None and 0.4 <= r["reward"] <= 0.6]
    shots(page, "static-3-filtered")

    # A rollout with a tool error and a verifier error.
    page.click("#view-run-0 a.clear-filter")
    target = next(r for r in records if r["n_tool_errors"])
    page.click(f"#rollouts-0 a.rollout-link:text-is('{target['rollout_id']}')")
    view = page.locator("#view-rollout")
    assert view.is_visible() and view.locator("h1").inner_text().startswith(target["rollout_id"])
    assert view.locator(".msg.tool.error").count() >= 1
    assert "invalid_arguments: 'command' must be a string" in view.locator(".msg.tool.error .error-box").first.inner_text()
    reasoning = view.locator("details.reasoning").first
    assert reasoning.get_attribute("open") is None
    assert not reasoning.locator("pre").is_visible()
    reasoning.locator("summary").click()
    assert reasoning.locator("pre").is_visible() and "needs a look" in reasoning.locator("pre").inner_text()
    assert view.locator(".msg").count() > 3
    shots(page, "static-4-rollout")

    verr = next(r for r in records if r.get("verifier_error"))
    page.goto(report.as_uri() + f"#r-0-{records.index(verr)}")
    assert "verifier error" in view.locator(".verifier-error").first.inner_text()
    assert "Traceback (most recent call last)" in view.inner_text()
    fold = view.locator("details.fold", has=page.locator("summary", has_text="output · 3.")).first
    assert "80 lines" in fold.locator("summary").inner_text() and not fold.locator("pre").is_visible()
    fold.locator("summary").click()
    assert fold.locator("pre").inner_text().count("\n") >= 79
    trajectories = (synth_run / "trajectories.jsonl").read_text().splitlines()
    img = next(i for i, line in enumerate(trajectories) if "browser_screenshot" in line)
    page.goto(report.as_uri() + f"#r-0-{img}")
    assert page.eval_on_selector("#view-rollout img.tool-image", "i => i.complete && i.naturalWidth") == 2
    shots(page, "static-5-image")

    page.click("#nav-compare")
    assert page.locator("#view-compare").is_visible()
    assert page.locator("#compare-table tr.compare-row").count() == 12
    assert page.locator("#compare-table td.better, #compare-table td.worse").count() >= 1
    shots(page, "static-6-compare")


def test_static_report_of_a_real_run(page: Any, shots: Shots, real_run: Path, tmp_path: Path) -> None:
    report = tmp_path / "r" / "report.html"
    assert main([str(real_run), "--out", str(report)]) == 0
    page.goto(report.as_uri())
    page.click("a.run-link")
    assert page.locator("#tasks-0 tr.task-row").count() == 10
    assert page.locator("#tasks-0 tr.total td").nth(3).inner_text() == "100%"
    shots(page, "real-run")  # docs/images/hermes-view.png is this page
    page.click("#tasks-0 a.task-link:text-is('http-server')")
    assert [r["task"] for r in _visible_rows(page, 0)] == ["http-server"] * 3
    page.click("#rollouts-0 tr.rollout-row:not(.hidden) a.rollout-link >> nth=0")
    view = page.locator("#view-rollout")
    assert view.locator("h1").inner_text().startswith("http-server#")
    assert view.locator(".msg.tool .role").first.inner_text().startswith("TOOL · TERMINAL")
    assert view.locator(".call .fn").first.inner_text() == "→ terminal"
    assert '\\"' not in view.inner_text()
    shots(page, "real-rollout")
    href = page.get_attribute("#view-rollout .nav a.back-link", "href")
    page.click("#view-rollout .nav a.back-link")
    assert href == "#run-0" and page.locator("#view-run-0").is_visible()
    # The file links are relative and resolve to the run's files on disk.
    link = page.get_attribute("#view-run-0 dl.meta a:text-is('summary.json')", "href")
    assert (report.parent / link).resolve() == (real_run / "summary.json").resolve()


def test_static_report_pages_a_large_run(page: Any, shots: Shots, tmp_path: Path) -> None:
    run = write_synthetic_run(tmp_path / "large", tasks=500, group_size=4, long_lines=3)
    report = tmp_path / "large.html"
    assert main([str(run), "--out", str(report)]) == 0
    page.goto(report.as_uri() + "#run-0")
    assert len(_visible_rows(page, 0)) == 100
    assert page.locator("#pager-0").inner_text().startswith("rollouts 1–100 of 2000")
    page.click("#pager-0 a.next-page")
    rows = _visible_rows(page, 0)
    assert len(rows) == 100 and rows[0]["id"] == _records(run)[100]["rollout_id"]
    page.click("#rollouts-0 tr.rollout-row:not(.hidden) a.rollout-link >> nth=5")
    assert page.locator("#view-rollout h1").inner_text().startswith(_records(run)[105]["rollout_id"])
    shots(page, "large-rollout")


@pytest.fixture
def served(synth_run: Path, synth_run_b: Path) -> Iterator[str]:
    """`python -m hermes_core.view A B --port 0` as its own process; yields its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "hermes_core.view", str(synth_run), str(synth_run_b), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "hermes view: 2 run(s), 96 rollouts" in line, proc.stderr.read() if proc.poll() is not None else line
        url = line.split(" at ", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        yield url
    finally:
        proc.terminate()
        try:
            assert proc.wait(10) == 0  # SIGTERM stops it cleanly
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def test_served_view_run_list_to_rollout_filter_and_compare(page: Any, shots: Shots, served: str, synth_run: Path) -> None:
    records = _records(synth_run)
    page.goto(served)
    assert page.locator("#run-list tr.run-row").count() == 2
    shots(page, "served-1-runs")
    page.click("#run-list a.run-link >> nth=0")
    page.wait_for_url("**/run/0")
    assert page.locator("#tasks-0 tr.task-row").count() == 12
    assert len(_visible_rows(page, 0)) == 48
    shots(page, "served-2-run")

    with page.expect_navigation():
        page.check("form.filters input[name=failed]")  # the form submits itself on change
    assert "failed=1" in page.url
    rows = _visible_rows(page, 0)
    assert [r["id"] for r in rows] == [r["rollout_id"] for r in records if not (r["reward"] is not None and r["reward"] >= 1.0)]
    assert page.is_checked("form.filters input[name=failed]")
    with page.expect_navigation():
        page.select_option("form.filters select[name=task]", "task-0001")
    assert "task=task-0001" in page.url and all(r["task"] == "task-0001" for r in _visible_rows(page, 0))
    shots(page, "served-3-filtered")
    page.click("#rollouts-0 thead a.sort:text-is('reward')")
    page.wait_for_url("**sort=reward*")
    shown = [float(r["reward"]) for r in _visible_rows(page, 0) if r["reward"] != ""]
    assert shown == sorted(shown) and "task=task-0001" in page.url and "failed=1" in page.url

    page.click("#rollouts-0 tr.rollout-row:not(.hidden) a.rollout-link >> nth=0")
    page.wait_for_url("**/run/0/rollout/*")
    n = int(page.url.rsplit("/", 1)[1])
    assert page.locator("#view-rollout h1").inner_text().startswith(records[n]["rollout_id"])
    assert page.locator("#view-rollout .msg").count() >= 2
    shots(page, "served-4-rollout")
    page.click("#view-rollout a:text-is('next ›')")
    page.wait_for_url(f"**/run/0/rollout/{n + 1}")

    page.click("#nav-compare")
    page.wait_for_url("**/compare")
    assert page.locator("#compare-table tr.compare-row").count() == 12
    shots(page, "served-5-compare")


def test_static_report_sorts_tables_by_a_column(page: Any, shots: Shots, synth_run: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    assert main([str(synth_run), "--out", str(report)]) == 0
    page.goto(report.as_uri() + "#run-0")

    def column(table: str, i: int) -> list[str]:
        return page.eval_on_selector_all(f"{table} tbody tr:not(.total):not(.hidden)",
                                         f"rows => rows.map(r => r.children[{i}].textContent.trim())")

    page.click("#tasks-0 thead th:text-is('mean reward')")
    means = [float(v) for v in column("#tasks-0", 2)]
    assert means == sorted(means) and means[0] < means[-1]
    page.click("#tasks-0 thead th:text-is('mean reward')")
    assert [float(v) for v in column("#tasks-0", 2)] == sorted(means, reverse=True)
    assert page.locator("#tasks-0 tbody tr").last.get_attribute("class") == "total"  # the total row stays last
    page.click("#rollouts-0 thead th:text-is('reward')")
    page.check("#view-run-0 form.filters input[name=failed]")
    rewards = column("#rollouts-0", 3)
    numeric = [float(v) for v in rewards if v != "-"]
    assert numeric == sorted(numeric) and rewards[len(numeric):] == ["-"] * (len(rewards) - len(numeric))
    assert all(float(v) < 1.0 for v in numeric)
    shots(page, "static-sorted")


def test_hostile_content_runs_no_script_in_the_report_or_the_server(page: Any, tmp_path: Path) -> None:
    from .test_hostile import HOSTILE, write_run

    run = write_run(tmp_path / "evil", HOSTILE)
    report = tmp_path / "report.html"
    assert main([str(run), "--out", str(report)]) == 0
    page.goto(report.as_uri() + "#r-0-0")
    assert page.locator("#view-rollout .msg").count() == 4
    assert "window.pwned=1" in page.locator("#view-rollout .msg.user").inner_text()
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert page.locator("#view-rollout img").count() == 0  # the remote image is a link, never loaded
    from hermes_core.view.loader import open_runs
    from hermes_core.view.server import ViewServer

    srv = ViewServer(open_runs([run]))
    srv.start()
    try:
        page.goto(srv.url + "run/0/rollout/0")
        assert "window.pwned=1" in page.locator("#view-rollout .msg.user").inner_text()
        page.goto(srv.url + "run/0")
        assert page.evaluate("typeof window.pwned") == "undefined"
    finally:
        srv.shutdown()
        srv.server_close()
