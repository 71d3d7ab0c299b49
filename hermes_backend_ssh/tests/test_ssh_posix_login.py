"""A remote user whose login shell is /bin/sh (dash), not bash: commands then run under
``env -i ... bash -c`` instead of in the login shell. The same guarantees must hold."""

from __future__ import annotations

import asyncio
import os

import pytest
from conftest import base_options, ports, remote, remote_leftovers

from hermes_core import Runtime
from hermes_core.sandbox import TIMEOUT_EXIT_CODE
from hermes_core.testing import count_processes_script

pytestmark = pytest.mark.ssh


@pytest.fixture
def sh_user() -> str:
    user = os.environ.get("HERMES_SSH_TEST_SH_USER")
    if not user:
        if os.environ.get("HERMES_REQUIRE_SSH") == "1":
            pytest.fail("HERMES_REQUIRE_SSH=1 but HERMES_SSH_TEST_SH_USER is not set")
        pytest.skip("HERMES_SSH_TEST_SH_USER (a user with /bin/sh as login shell) is not set")
    return user


@pytest.fixture
async def sb(sh_user):
    rt = Runtime()
    box = await rt.create_sandbox("ssh", base_options(ports()[0], user=sh_user, hosts=[f"127.0.0.1:{ports()[0]}"])).start()
    yield box
    await box.close()
    await rt.aclose()


async def test_login_shell_is_not_bash_and_commands_still_work(sb, sh_user):
    assert sb._login_bash is False, "the setup probe should have seen a non-bash login shell"
    assert (await remote("echo ${BASH_VERSION:-none}", user=sh_user)).strip() == "none"
    r = await sb.exec("echo out; echo err >&2; echo $BASH_VERSION | cut -c1; exit 7")
    assert r.exit_code == 7 and r.output.startswith("out\nerr\n") and r.output.strip()[-1].isdigit()
    hostile = "$HOME; echo pwned `id` $(id) 'q' \"dq\""
    assert (await sb.exec(["printf", "%s", hostile])).output == hostile
    r = await sb.exec("pwd; echo \"$G\"; cat", cwd="/tmp", env={"G": "hi there"}, stdin=b"in")
    assert r.output == "/tmp\nhi there\nin"
    assert (await sb.exec(["definitely-not-a-command-hermes"])).exit_code == 127


async def test_environment_is_scrubbed(sb):
    names = {line.split("=", 1)[0] for line in (await sb.exec("env")).output.splitlines() if "=" in line}
    assert not names & {"SSH_CONNECTION", "SSH_CLIENT", "MAIL", "SHELL"}  # (bash itself sets PWD)
    assert {"HOME", "TMPDIR", "PATH", "HERMES_SSH_SANDBOX"} <= names


async def test_timeout_kills_the_group_and_shell_persists(sb):
    m = "hermes-ssh-posix-sleeper"
    r = await sb.exec(f"echo started; (exec -a {m} sleep 60) & (exec -a {m} sleep 60)", timeout=1)
    assert r.exit_code == TIMEOUT_EXIT_CODE and "started" in r.output
    await asyncio.sleep(0.2)
    assert (await sb.exec(count_processes_script(m))).output.strip() == "0"
    await sb.shell("cd /tmp && export KEEP=kept")
    assert (await sb.shell('pwd; echo "$KEEP"')).output == "/tmp\nkept\n"


async def test_spawn_pty_and_group_kill(sb):
    p = await sb.spawn("if [ -t 0 ]; then echo TTY; fi; read -r l; echo got:$l", pty=True)
    buf = b""
    while b"TTY" not in buf:
        buf += await asyncio.wait_for(p.read(), 10)
    await p.write(b"x\n")
    while b"got:x" not in buf:
        buf += await asyncio.wait_for(p.read(), 10)
    assert await p.wait(10) == 0
    q = await sb.spawn("sleep 60 & sleep 60")
    assert await q.kill(grace=2) == 128 + 15


async def test_files_and_close_leave_nothing(sh_user):
    rt = Runtime()
    sb = await rt.create_sandbox("ssh", base_options(ports()[0], user=sh_user, hosts=[f"127.0.0.1:{ports()[0]}"])).start()
    await sb.write_bytes("d/f.bin", bytes(range(256)))
    assert await sb.read_bytes("d/f.bin") == bytes(range(256))
    await sb.exec("setsid bash -c 'exec -a hermes-ssh-posix-daemon sleep 300' >/dev/null 2>&1 < /dev/null &")
    await sb.spawn("sleep 300")
    await sb.close()
    await rt.aclose()
    assert await remote_leftovers(sb.remote_dir, user=sh_user) == []


async def test_bash_missing_is_reported(sh_user):
    from hermes_backend_ssh import RemoteSetupError

    rt = Runtime()
    sb = rt.create_sandbox("ssh", base_options(ports()[0], user=sh_user, hosts=[f"127.0.0.1:{ports()[0]}"], path="/nonexistent-bin"))
    with pytest.raises(RemoteSetupError, match="has no bash"):
        await sb.start()
    await rt.aclose()
