"""The session shell's fast path: while no shell has started, a command that is one external
program with literal arguments runs directly (``Sandbox._exec_in_fresh_shell``), and must be
indistinguishable from the shell running it — same environment, argv[0], output (cut at the same
place), exit status, timeout and kill; anything a fresh bash could run differently goes to the
shell. Each case runs the same command in a sandbox without a shell (fast path) and in one whose
shell already runs, and compares."""

from __future__ import annotations

import asyncio
import os
import re
import stat
import subprocess

import pytest
from hermes_core import Runtime
from hermes_core.sandbox import _cloned, job_report, simple_command
from hermes_plugins import _local_cgroup as cgroups


@pytest.mark.parametrize("command", [
    "sleep 0.5", "pytest -q tests/test_x.py", "./run.sh a=b --flag=1,2:3", "  ls  -la\t/tmp ", "/usr/bin/env",
    "git log -n1 --format=%H@x",
])
def test_simple_commands_are_recognised(command):
    words = simple_command(command)
    assert words == command.split()


@pytest.mark.parametrize("command", [
    "", "   ", "echo hi", "cd /tmp", "export A=1", "A=1 env", "ls *.py", "ls $HOME", "ls ~", "a && b",
    "a | b", "a; b", "a & b", 'ls "x"', "ls 'x'", "ls a\\ b", "ls\nls", "%1", "ls # c", "time ls", "{ ls; }",
    "ls > f", "ls <f", "[[ -e x ]]", "ls {a,b}", "ls !x", "exec ls", "exit", "true", "source f", ". f",
    "ls a?b", "kill 1", "ls $(x)", "ls `x`",
])
def test_anything_else_is_left_to_the_shell(command):
    assert simple_command(command) is None


_root = cgroups.find_root()
_MODES = ["marker"] + (["clone3", "launcher"] if _root is not None else [])


@pytest.fixture(params=_MODES)
async def pair(request, tmp_path, monkeypatch):
    """Makes local sandboxes in one tracking mode."""
    mode = request.param
    if mode == "launcher":
        monkeypatch.setattr(_cloned, "_clone_ok", False)
    elif mode == "clone3" and not _cloned.clone_into_cgroup():
        pytest.skip("no clone3 helper here")
    rt = Runtime()
    opts = {"root": str(tmp_path), "tracking": "marker" if mode == "marker" else "cgroup",
            "env": getattr(request, "env", {})}
    made = []

    async def make(env=None):
        sb = await rt.create_sandbox("local", {**opts, "env": env or {}}).start()
        made.append(sb)
        return sb

    yield make
    for sb in made:
        await sb.close()
    await rt.aclose()


def _files(sb) -> None:
    work = sb.workdir
    for name, text in {
        "exit3.sh": "#!/bin/sh\nexit 3\n",
        "sig.sh": "#!/bin/sh\necho before; kill -$1 $$\n",
        "noshebang.sh": "echo run-by-bash $BASH_VERSION\n",
        "badinterp.sh": "#!/nonexistent/interp\necho x\n",
        "args.sh": "#!/bin/sh\nprintf '[%s]' \"$0\" \"$@\"; echo; echo \"_=$_\"\n",
    }.items():
        path = os.path.join(work, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)
    with open(os.path.join(work, "plain.txt"), "w") as f:
        f.write("not a program\n")


async def _no_fast_path(*args, **kwargs):
    return None


async def _both(make, command, *, env=None, **kw):
    """``command`` in a new sandbox, and in another whose shell runs everything."""
    fresh, warm = await make(env), await make(env)
    _files(fresh), _files(warm)
    warm._exec_in_fresh_shell = _no_fast_path
    a = await fresh.shell(command, **kw)
    b = await warm.shell(command, **kw)
    assert warm._shell.proc is not None
    fresh_took_fast_path = fresh._shell.proc is None
    return a, b, fresh_took_fast_path, fresh, warm


def _same(a, b, fresh, warm):
    """The two results, each sandbox's own paths written as <root>."""
    def norm(r, sb):
        text = r.output.replace(str(sb.root), "<root>").replace(sb.sandbox_id, "<id>")
        # bash's report of a job killed by a signal names its pid and input line number
        return r.exit_code, r.timed_out, re.sub(r"^bash: line \d+: +\d+ ", "bash: line N: PID ", text, flags=re.M)
    return norm(a, fresh), norm(b, warm)


@pytest.mark.parametrize("command", [
    "ls --no-such-flag",            # argv[0] as typed, in the program's own message; exit 2
    "ls /no/such/dir",              # stderr merged
    "./exit3.sh",                   # exit status; death by signal is 128+N, and bash's report of it
    "./sig.sh TERM", "./sig.sh KILL", "./sig.sh SEGV", "./sig.sh PIPE", "./sig.sh USR1",
    "./args.sh one two=2 -x",       # $0 as typed, `_` as bash sets it
    "/bin/pwd", "cat", "seq 1 5",   # working directory; stdin is /dev/null
    "grep -e SigBlk -e SigIgn -e SigCgt /proc/self/status",
    "sleep 0.1",
])
async def test_a_simple_command_runs_as_the_shell_would(pair, command):
    a, b, fast, fresh, warm = await _both(pair, command)
    assert fast, "the fast path was not taken"
    assert _same(a, b, fresh, warm)[0] == _same(a, b, fresh, warm)[1]


async def test_the_environment_is_the_shells(pair):
    a, b, fast, fresh, warm = await _both(pair, "env", env={"SHLVL": "4", "EXTRA": "x y"})
    assert fast
    got, want = (sorted(r.output.replace(str(s.root), "<root>").replace(s.sandbox_id, "<id>").splitlines())
                 for r, s in ((a, fresh), (b, warm)))
    assert got == want
    assert "SHLVL=5" in got and "PAGER=cat" in got and "_=/usr/bin/env" in got


async def test_output_is_cut_where_the_shell_cuts_it(pair):
    for limit in (1000, 1001, 70_000):
        a, b, fast, _, _ = await _both(pair, "seq 1 200000", max_output=limit)
        assert fast
        assert a.output == b.output
        assert "bytes of output omitted" in a.output
        assert limit - 1 <= len(a.output) - len("\n[hermes: ... 1288886 bytes of output omitted ...]\n") <= limit + 8


async def test_a_timeout_kills_and_says_so_the_same_way(pair):
    a, b, fast, fresh, warm = await _both(pair, "sleep 30", timeout=0.5)
    assert fast
    assert _same(a, b, fresh, warm)[0] == _same(a, b, fresh, warm)[1]
    assert a.exit_code == 124 and a.timed_out
    assert "Killed" in a.output and a.output.endswith("timed out after 0.5s and was killed]")
    assert fresh.host_pids() in ([], None)


@pytest.mark.parametrize("command", ["./noshebang.sh", "./badinterp.sh", "./plain.txt", "no-such-command-x"])
async def test_what_bash_would_handle_itself_goes_to_the_shell(pair, command):
    a, b, fast, fresh, warm = await _both(pair, command)
    assert not fast, "a command bash handles itself took the fast path"
    assert _same(a, b, fresh, warm)[0] == _same(a, b, fresh, warm)[1]


async def test_a_startup_file_or_option_variable_keeps_the_shell(pair, tmp_path):
    rc = tmp_path / "bashenv"
    rc.write_text("sleep() { echo shadowed; }\n")
    a, b, fast, _, _ = await _both(pair, "sleep 0", env={"BASH_ENV": str(rc)})
    assert not fast
    assert a.output == b.output == "shadowed\n"


async def test_state_after_a_fast_command_lives_in_the_shell(pair):
    sb = await pair()
    assert (await sb.shell("/bin/pwd")).output.strip() == os.path.realpath(sb.workdir)
    assert sb._shell.proc is None
    await sb.shell("cd /tmp")
    assert sb._shell.proc is not None
    assert (await sb.shell("/bin/pwd")).output == "/tmp\n"


async def test_a_cancelled_fast_command_leaves_no_process(pair):
    sb = await pair()
    task = asyncio.ensure_future(sb.shell("sleep 30"))
    for _ in range(100):
        await asyncio.sleep(0.02)
        if sb._pgids:
            break
    assert sb._pgids, "the command never started"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pids = sb.host_pids()
    assert pids in ([], None)
    for pgid in list(sb._pgids):  # the marker mode has no cgroup to ask: the group must be gone
        with pytest.raises(ProcessLookupError):
            os.killpg(pgid, 0)
    assert stat.S_ISDIR(os.stat(sb.workdir).st_mode)


def test_the_job_report_pads_the_pid_as_bash_does():
    """bash writes a job's pid in a field of five (`%5ld`): a 4-digit pid gets a space."""
    out = subprocess.run(["bash", "--noprofile", "--norc", "-c", "set -m; sh -c 'kill -KILL $$'; :"],
                         capture_output=True, text=True, timeout=30, check=False).stderr
    m = re.match(r"bash: line 1: +(\d+) ", out)
    assert m, out
    assert job_report(int(m[1]), 9, ["sh", "-c", "kill -KILL $$"]).split("Killed")[0] == out.split("Killed")[0]
    assert job_report(1234, 9, ["x"]).startswith("bash: line 1:  1234 Killed ")
