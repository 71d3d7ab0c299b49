"""The local server: pages and JSON endpoints over real HTTP on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hermes_core.view.loader import open_runs
from hermes_core.view.server import ViewServer


@pytest.fixture
def server(synth_run: Path, synth_run_b: Path) -> Iterator[ViewServer]:
    srv = ViewServer(open_runs([synth_run, synth_run_b]), "127.0.0.1", 0)
    thread = srv.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(10)
        assert not thread.is_alive()


def get(srv: ViewServer, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    req = urllib.request.Request(srv.url.rstrip("/") + path, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def test_binds_loopback_by_default(server: ViewServer) -> None:
    assert server.server_address[0] == "127.0.0.1"
    assert server.url.startswith("http://127.0.0.1:")


def test_api_runs_tasks_rollouts_and_one_rollout(server: ViewServer) -> None:
    status, ctype, body = get(server, "/api/runs")
    assert status == 200 and ctype.startswith("application/json")
    runs = json.loads(body)
    assert [r["name"] for r in runs] == ["synthetic-a", "synthetic-b"]
    assert runs[0]["ks"] == [1, 2, 3, 4] and runs[0]["overall"]["rollouts"] == 48
    tasks = json.loads(get(server, "/api/run/0")[2])["tasks"]
    assert len(tasks) == 12 and set(tasks["task-0000"]["pass_at_k"]) <= {"1", "2", "3", "4"}
    page = json.loads(get(server, "/api/run/0/rollouts?failed=1&limit=5&offset=2")[2])
    assert page["offset"] == 2 and len(page["rollouts"]) == 5 and page["total"] > 5
    assert all(not r["passed"] for r in page["rollouts"])
    one = json.loads(get(server, f"/api/run/0/rollout/{page['rollouts'][0]['n']}")[2])
    assert one["trajectory"]["rollout_id"] == one["record"]["rollout_id"] == page["rollouts"][0]["rollout_id"]


def test_pages_render_and_filter(server: ViewServer) -> None:
    status, ctype, html = get(server, "/")
    assert status == 200 and ctype.startswith("text/html") and 'id="run-list"' in html and "synthetic-b" in html
    html = get(server, "/run/0?task=task-0002")[2]
    assert html.count('class="rollout-row"') == 4 and 'data-task="task-0001"' not in html.split("rollout-table")[1]
    html = get(server, "/run/0?infra=1")[2]
    rows = html.split('id="rollouts-0"')[1]
    assert rows.count('class="rollout-row"') >= 1 and 'data-infra="0"' not in rows
    html = get(server, "/run/0/rollout/3")[2]
    assert 'class="transcript"' in html and "transcript · " in html
    html = get(server, "/compare")[2]
    assert 'id="compare-table"' in html and html.count('class="compare-row"') == 12


def test_paging(tmp_path: Path) -> None:
    from hermes_core.view.synthetic import write_synthetic_run

    srv = ViewServer(open_runs([write_synthetic_run(tmp_path / "big", tasks=130, group_size=2, long_lines=2)]))
    srv.start()
    try:
        first = get(srv, "/run/0")[2]
        assert first.count('class="rollout-row"') == 100 and "rollouts 1–100 of 260" in first
        assert 'class="next-page"' in first and 'class="prev-page"' not in first
        last = get(srv, "/run/0?page=2")[2]
        assert last.count('class="rollout-row"') == 60 and "rollouts 201–260 of 260" in last
        assert 'class="next-page"' not in last
    finally:
        srv.shutdown()
        srv.server_close()


def test_files_only_from_inside_the_run(server: ViewServer) -> None:
    status, ctype, body = get(server, "/run/0/file/summary.json")
    assert status == 200 and json.loads(body)["run"]["environment"] == "synthetic"
    for path in ("/run/0/file/..%2Fsynthetic-b%2Fsummary.json", "/run/0/file/%2Fetc%2Fpasswd", "/run/0/file/nope"):
        assert get(server, path)[0] == 404
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    conn.request("GET", "/run/0/file/../../../etc/passwd")
    assert conn.getresponse().status == 404
    conn.close()


def test_unknown_pages_and_foreign_host_header(server: ViewServer) -> None:
    assert get(server, "/run/9")[0] == 404
    assert get(server, "/run/0/rollout/999")[0] == 404
    status, ctype, body = get(server, "/api/run/0/rollout/999")
    assert status == 404 and json.loads(body) == {"error": "run 0 has no rollout 999"}
    assert get(server, "/nothing")[0] == 404
    assert get(server, "/", {"Host": "evil.example:80"})[0] == 403
    assert get(server, "/", {"Host": "localhost"})[0] == 200


def test_rollout_list_sorts_server_side_across_pages(tmp_path: Path) -> None:
    from hermes_core.view.synthetic import write_synthetic_run

    srv = ViewServer(open_runs([write_synthetic_run(tmp_path / "big", tasks=80, group_size=3, long_lines=2)]))
    srv.start()
    try:
        data = json.loads(get(srv, "/api/run/0/rollouts?sort=-time&limit=1000")[2])["rollouts"]
        times = [r["duration"] for r in data]
        assert len(times) == 240 and times == sorted(times, reverse=True)
        rewards = [r["reward"] for r in json.loads(get(srv, "/api/run/0/rollouts?sort=reward&limit=1000")[2])["rollouts"]]
        scored = [r for r in rewards if r is not None]
        assert scored == sorted(scored) and rewards[len(scored):] == [None] * (len(rewards) - len(scored)) and len(scored) < 240
        html = get(srv, "/run/0?failed=1&sort=-time&page=1")[2]
        assert 'href="/run/0?failed=1&amp;sort=time"' in html  # clicking the sorted column again reverses it
        assert '<input type="hidden" name="sort" value="-time">' in html  # filters keep the sort
        assert 'class="next-page"' not in html or "page=2" in html
        page1 = [float(x) for x in __import__("re").findall(r'<td>([\d.]+)s</td>\s*<td class="l wrap', html)]
        failed = sorted((r["duration"] for r in data if not r["passed"]), reverse=True)
        assert page1 == [round(x, 2) for x in failed[100:200]]
        assert get(srv, "/run/0?sort=bogus")[0] == 200
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_run_in_progress_shows_new_rollouts_on_reload(tmp_path: Path) -> None:
    from hermes_core.view.synthetic import write_synthetic_run

    path = write_synthetic_run(tmp_path / "live", tasks=6, group_size=1, long_lines=2)
    lines = (path / "results.jsonl").read_text().splitlines(keepends=True)
    (path / "results.jsonl").write_text("".join(lines[:2]))
    summary = json.loads((path / "summary.json").read_text())
    (path / "summary.json").write_text(json.dumps({**summary, "status": "running", "planned": 6}))
    srv = ViewServer(open_runs([path]))
    srv.start()
    try:
        html = get(srv, "/run/0")[2]
        assert html.count('class="rollout-row"') == 2 and "This run is running: 2 of 6 rollouts." in html
        with (path / "results.jsonl").open("a") as f:
            f.write("".join(lines[2:]))
        (path / "summary.json").write_text(json.dumps({**summary, "status": "complete", "planned": 6}))
        html = get(srv, "/run/0")[2]
        assert html.count('class="rollout-row"') == 6 and "This run is" not in html
        assert json.loads(get(srv, "/api/runs")[2])[0]["overall"]["rollouts"] == 6
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_run_with_many_tasks_shows_the_first_200_and_links_to_all(tmp_path: Path) -> None:
    from hermes_core.view.synthetic import write_synthetic_run

    srv = ViewServer(open_runs([write_synthetic_run(tmp_path / "wide", tasks=250, group_size=1, long_lines=1)]))
    srv.start()
    try:
        html = get(srv, "/run/0?failed=1")[2]
        assert html.count('class="task-row"') == 200 and "200 of 250 tasks shown" in html
        assert 'href="/run/0?failed=1&amp;tasks=all" class="all-tasks"' in html
        assert '<td class="l">all</td><td>250</td>' in html  # the total row still counts every rollout
        html = get(srv, "/run/0?failed=1&tasks=all")[2]
        assert html.count('class="task-row"') == 250 and "tasks shown" not in html
        assert "sort=reward&amp;tasks=all" in html or "tasks=all&amp;sort=reward" in html
    finally:
        srv.shutdown()
        srv.server_close()
