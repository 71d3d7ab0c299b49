"""The tasks of ``terminal-test``: prompt, sandbox preparation, reference solution, check.

Each check inspects the sandbox through the ToolContext after the agent is done and returns a
reward (or named scores). Tasks need only ``bash`` and ``python3`` in the sandbox.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import tarfile
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Check = Callable[[Any, Any], Awaitable[float | dict[str, float]]]


@dataclass(frozen=True)
class Task:
    id: str
    prompt: str
    solution: str
    check: Check
    files: dict[str, str] = field(default_factory=dict)
    setup: str | None = None


async def _text(ctx: Any, path: str) -> str | None:
    res = await ctx.read_file(path)
    return res.get("content")


async def _run(ctx: Any, argv: list[str], timeout: float = 20) -> tuple[int, str]:
    res = await ctx.terminal(" ".join(shlex.quote(a) for a in argv), timeout=timeout)
    return res["exit_code"], res["output"]


# --------------------------------------------------------------------------- hello-file


async def check_hello(ctx: Any, item: Any) -> float:
    text = await _text(ctx, "hello.txt")
    if text == "Hello, hermes!\n":
        return 1.0
    return 0.5 if text is not None and text.strip() == "Hello, hermes!" else 0.0


# --------------------------------------------------------------------------- fix-script

SUM_TO = """\
import sys


def sum_to(n):
    total = 0
    for i in range(n):
        total += i
    return total


print(sum_to(int(sys.argv[1])))
"""


async def check_sum_to(ctx: Any, item: Any) -> dict[str, float]:
    scores = {}
    for name, n, want in (("example", 10, "55"), ("hidden", 100, "5050"), ("edge", 1, "1")):
        code, out = await _run(ctx, ["python3", "sum_to.py", str(n)])
        scores[name] = 1.0 if code == 0 and out.strip() == want else 0.0
    return scores


# --------------------------------------------------------------------------- csv-totals

SALES = """\
region,product,amount
north,widget,10.50
south,gadget,4.25
north,gadget,3.00
east,widget,7.75
south,widget,12.00
east,gizmo,1.25
north,gizmo,2.50
"""

CSV_SOLUTION = """\
python3 - <<'EOF'
import csv
from collections import defaultdict
totals = defaultdict(float)
with open("sales.csv") as f:
    for row in csv.DictReader(f):
        totals[row["region"]] += float(row["amount"])
with open("totals.csv", "w") as f:
    f.write("region,total\\n")
    for region in sorted(totals):
        f.write(f"{region},{totals[region]:.2f}\\n")
EOF
"""


async def check_csv(ctx: Any, item: Any) -> float:
    text = await _text(ctx, "totals.csv")
    if text is None:
        return 0.0
    lines = [line.strip() for line in text.strip().splitlines()]
    return 1.0 if lines == ["region,total", "east,9.00", "north,16.00", "south,16.25"] else 0.0


# --------------------------------------------------------------------------- http-server

INDEX = "<h1>hermes says hi</h1>\n"
FREE_PORT = (
    "python3 -c \"import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); "
    "print(s.getsockname()[1])\" > port.txt"
)
FETCH = """\
import sys, time, urllib.request
port = open("port.txt").read().strip()
for _ in range(40):
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=2).read()
        sys.stdout.write(body.decode())
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(7)
"""
SERVER_SOLUTION = (
    'nohup python3 -m http.server "$(cat port.txt)" --bind 127.0.0.1 --directory site '
    "> server.log 2>&1 &\n"
    f"python3 - >/dev/null <<'EOF'\n{FETCH}EOF\n"
)


async def check_server(ctx: Any, item: Any) -> float:
    code, out = await _run(ctx, ["python3", "-c", FETCH], timeout=15)
    return 1.0 if code == 0 and out == INDEX else 0.0


# --------------------------------------------------------------------------- count-errors

APP_LOG = """\
2024-05-01T10:00:00 INFO service started
2024-05-01T10:00:01 ERROR cannot open /var/data
2024-05-01T10:00:02 WARN disk 91% full
2024-05-01T10:00:03 INFO user searched for "ERROR codes"
2024-05-01T10:00:04 ERROR timeout talking to db
2024-05-01T10:00:05 DEBUG retrying
2024-05-01T10:00:06 ERROR timeout talking to db
2024-05-01T10:00:07 INFO recovered
"""


async def check_errors(ctx: Any, item: Any) -> float:
    text = await _text(ctx, "error_count.txt")
    return 1.0 if text is not None and text.strip() == "3" else 0.0


# --------------------------------------------------------------------------- json-adults

USERS = json.dumps(
    [{"name": "Eve", "age": 52}, {"name": "Bob", "age": 17}, {"name": "Cy", "age": 18},
     {"name": "Dee", "age": 12}, {"name": "Ada", "age": 36}],
    indent=2,
) + "\n"


async def check_adults(ctx: Any, item: Any) -> float:
    text = await _text(ctx, "adults.txt")
    return 1.0 if text is not None and text.split() == ["Ada", "Cy", "Eve"] else 0.0


# --------------------------------------------------------------------------- greet-script

GREET_SOLUTION = """\
cat > greet.sh <<'EOF'
#!/bin/sh
echo "Hello, ${1:-world}!"
EOF
chmod +x greet.sh
"""


async def check_greet(ctx: Any, item: Any) -> dict[str, float]:
    code, _ = await _run(ctx, ["test", "-x", "greet.sh"])
    scores = {"executable": 1.0 if code == 0 else 0.0}
    code, out = await _run(ctx, ["./greet.sh", "Ada Lovelace"])
    scores["named"] = 1.0 if code == 0 and out.strip() == "Hello, Ada Lovelace!" else 0.0
    code, out = await _run(ctx, ["./greet.sh"])
    scores["default"] = 1.0 if code == 0 and out.strip() == "Hello, world!" else 0.0
    return scores


# --------------------------------------------------------------------------- project-layout

LAYOUT_SOLUTION = """\
mkdir -p project/src project/tests
echo "print('app')" > project/src/app.py
printf '# project\\n\\nA small project.\\n' > project/README.md
"""


async def check_layout(ctx: Any, item: Any) -> float:
    code, _ = await _run(ctx, ["test", "-d", "project/tests"])
    if code != 0:
        return 0.0
    code, out = await _run(ctx, ["python3", "project/src/app.py"])
    if code != 0 or out.strip() != "app":
        return 0.0
    readme = await _text(ctx, "project/README.md")
    return 1.0 if readme is not None and readme.splitlines()[:1] == ["# project"] else 0.0


# --------------------------------------------------------------------------- replace-host

CONFIG_INI = """\
[server]
host = localhost
port = 8080

[db]
url = postgres://localhost:5432/app
replica = localhost-replica.internal
"""


async def check_replace(ctx: Any, item: Any) -> float:
    text = await _text(ctx, "config.ini")
    want = CONFIG_INI.replace("localhost", "127.0.0.1")
    return 1.0 if text == want else 0.0


# --------------------------------------------------------------------------- archive

async def check_archive(ctx: Any, item: Any) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp, "backup.tar.gz")
        res = await ctx.download_file("backup.tar.gz", dest)
        if not res.get("success"):
            return 0.0
        return await asyncio.to_thread(_archive_ok, dest)


def _archive_ok(path: Path) -> float:
    try:
        with tarfile.open(path, "r:gz") as tar:
            names = {m.name.removeprefix("./") for m in tar.getmembers() if m.isfile()}
            if names != {"data/a.txt", "data/sub/b.txt"}:
                return 0.0
            member = tar.extractfile(next(m for m in tar.getmembers() if m.name.endswith("data/a.txt")))
            return 1.0 if member is not None and member.read() == b"alpha\n" else 0.0
    except (tarfile.TarError, OSError, StopIteration):
        return 0.0


TASKS: tuple[Task, ...] = (
    Task(
        "hello-file",
        "Create a file named hello.txt in the current directory containing exactly the line "
        "`Hello, hermes!` followed by a newline.",
        "printf 'Hello, hermes!\\n' > hello.txt",
        check_hello,
    ),
    Task(
        "fix-script",
        "sum_to.py should print 1 + 2 + ... + N for `python3 sum_to.py N`, but "
        "`python3 sum_to.py 10` prints 45 instead of 55. Fix the bug in sum_to.py.",
        "sed -i 's/range(n)/range(1, n + 1)/' sum_to.py",
        check_sum_to,
        files={"sum_to.py": SUM_TO},
    ),
    Task(
        "csv-totals",
        "sales.csv has the columns region,product,amount. Write totals.csv with the header "
        "`region,total` and one row per region holding the sum of its amounts with two decimals "
        "(e.g. `north,16.00`), rows sorted by region name.",
        CSV_SOLUTION,
        check_csv,
        files={"sales.csv": SALES},
    ),
    Task(
        "http-server",
        "Start an HTTP server in the background that serves the directory site/ on 127.0.0.1 at "
        "the port number written in port.txt. Leave it running when you finish: it is queried "
        "after you are done.",
        SERVER_SOLUTION,
        check_server,
        files={"site/index.html": INDEX},
        setup=FREE_PORT,
    ),
    Task(
        "count-errors",
        "Count the lines of app.log whose log level (the second field) is ERROR, and write just "
        "that number to error_count.txt.",
        "awk '$2 == \"ERROR\"' app.log | wc -l | tr -d ' ' > error_count.txt",
        check_errors,
        files={"app.log": APP_LOG},
    ),
    Task(
        "json-adults",
        "users.json holds a list of users with a name and an age. Write adults.txt with the names "
        "of the users aged 18 or older, one per line, sorted alphabetically.",
        "python3 -c \"import json; u = json.load(open('users.json')); "
        "open('adults.txt', 'w').write(''.join(n + chr(10) for n in sorted(x['name'] for x in u if x['age'] >= 18)))\"",
        check_adults,
        files={"users.json": USERS},
    ),
    Task(
        "greet-script",
        "Create an executable shell script greet.sh that prints `Hello, NAME!` where NAME is its "
        "first argument, or `Hello, world!` when it is called without arguments.",
        GREET_SOLUTION,
        check_greet,
    ),
    Task(
        "project-layout",
        "Create this layout: project/src/app.py (a Python script that prints `app`), an empty "
        "directory project/tests, and project/README.md whose first line is `# project`.",
        LAYOUT_SOLUTION,
        check_layout,
    ),
    Task(
        "replace-host",
        "In config.ini, replace every occurrence of `localhost` with `127.0.0.1`. Change nothing "
        "else in the file.",
        "sed -i 's/localhost/127.0.0.1/g' config.ini",
        check_replace,
        files={"config.ini": CONFIG_INI},
    ),
    Task(
        "archive",
        "Create a gzip-compressed tar archive backup.tar.gz of the directory data/ (the paths in "
        "the archive must start with data/).",
        "tar -czf backup.tar.gz data",
        check_archive,
        files={"data/a.txt": "alpha\n", "data/sub/b.txt": "beta\n"},
    ),
)

CHECKS: dict[str, Check] = {t.id: t.check for t in TASKS}
