"""SSH backend benchmark: hermes against bare ``asyncssh`` calls, in the same run, interleaved.

Rows (targets from issue 16):
  exec p50            sandbox.exec("echo hi")     vs conn.run("echo hi") on its own connection   <= 1.2x
  shell command p50   sandbox.shell("echo hi")    vs a bare persistent bash over one channel      <= 1.2x
                      (and, for scale, vs the bare conn.run("echo hi") it replaces)
  10 MB round trip    write_bytes + read_bytes    vs sftp write + read of a file                   <= 1.3x
  start + close       sandbox start/close         vs connect + mkdir + rm -rf + close             (reported)

Needs the suite's sshds (ports, user and keys in HERMES_SSH_TEST_*):
    HERMES_SSH_KEEP=1 ROOT=$PWD VENV=.venv PY=.venv/bin/python bash scripts/suites/ssh.sh   # prints the exports
    python bench/bench_ssh.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time


def p50(xs: list[float]) -> float:
    return statistics.median(xs)


def row(name: str, ours: list[float], bare: list[float], target: float | None) -> float:
    a, b = p50(ours), p50(bare)
    ratio = a / b
    goal = f"target <= {target}x, {'ok' if ratio <= target else 'OVER'}" if target else "reported"
    print(f"{name:<20} hermes {a * 1000:8.2f} ms   bare asyncssh {b * 1000:8.2f} ms   ratio {ratio:5.2f}x  ({goal})")
    return ratio


def env(name: str) -> str:
    try:
        return os.environ[name]
    except KeyError:
        sys.exit(f"{name} is not set: start the test sshds with HERMES_SSH_KEEP=1 bash scripts/suites/ssh.sh")


async def main(quick: bool) -> int:
    import asyncssh

    from hermes_core import Runtime

    port = int(env("HERMES_SSH_TEST_PORTS").split(",")[0])
    user, key, known = env("HERMES_SSH_TEST_USER"), env("HERMES_SSH_TEST_KEY"), env("HERMES_SSH_TEST_KNOWN_HOSTS")
    root = f"~/.cache/hermes-ssh-bench-{secrets.token_hex(3)}"
    opts = {"hosts": [f"{user}@127.0.0.1:{port}"], "client_keys": [key], "known_hosts": known, "agent": False, "root": root}
    n_exec, n_shell, n_xfer, n_start = (20, 50, 3, 4) if quick else (200, 500, 15, 20)

    async def bare_connect() -> asyncssh.SSHClientConnection:
        return await asyncssh.connect("127.0.0.1", port, username=user, client_keys=[key], known_hosts=known,
                                      agent_path=None, config=None)

    rt = Runtime()
    sb = await rt.create_sandbox("ssh", opts).start()
    conn = await bare_connect()
    home = (await conn.run("echo $HOME", check=True)).stdout.strip()
    bare_dir = f"{home}/.cache/hermes-ssh-bench-bare-{secrets.token_hex(3)}"
    await conn.run(f"mkdir -p {bare_dir}", check=True)
    print(f"asyncssh {asyncssh.__version__}, sshd on 127.0.0.1:{port}, {'quick' if quick else 'full'} run; "
          f"each row interleaves hermes and bare calls")

    # ---------------------------------------------------------------- exec
    ours, bare = [], []
    for _ in range(3):  # warm both paths
        await sb.exec("echo hi")
        await conn.run("echo hi")
    for _ in range(n_exec):
        t = time.perf_counter()
        r = await sb.exec("echo hi")
        ours.append(time.perf_counter() - t)
        assert r.output == "hi\n"
        t = time.perf_counter()
        rb = await conn.run("echo hi")
        bare.append(time.perf_counter() - t)
        assert rb.stdout == "hi\n"
    ratios = [row("exec p50", ours, bare, 1.2)]

    # ---------------------------------------------------------------- stateful shell
    proc = await conn.create_process("bash --noprofile --norc", encoding=None)

    async def bare_shell(cmd: str) -> bytes:
        nonce = secrets.token_hex(4)
        proc.stdin.write(f"{cmd}\nprintf '\\n__END_{nonce}_%s__\\n' $?\n".encode())
        end = f"__END_{nonce}_".encode()
        buf = b""
        while end not in buf:
            buf += await proc.stdout.read(65536)
        return buf

    await sb.shell("echo hi")
    await bare_shell("echo hi")
    ours, bare = [], []
    for _ in range(n_shell):
        t = time.perf_counter()
        r = await sb.shell("echo hi")
        ours.append(time.perf_counter() - t)
        assert r.output == "hi\n"
        t = time.perf_counter()
        await bare_shell("echo hi")
        bare.append(time.perf_counter() - t)
    proc.close()
    ratios.append(row("shell command p50", ours, bare, 1.2))
    runs = []
    for _ in range(min(n_exec, 50)):
        t = time.perf_counter()
        await conn.run("echo hi")
        runs.append(time.perf_counter() - t)
    print(f"{'':<20} (the same shell command is {p50(ours) / p50(runs):.2f}x a bare conn.run of it)")

    # ---------------------------------------------------------------- 10 MB round trip
    data = os.urandom(10 << 20)
    sftp = await conn.start_sftp_client()
    ours, bare = [], []
    for i in range(n_xfer):
        t = time.perf_counter()
        await sb.write_bytes(f"bench-{i}.bin", data)
        back = await sb.read_bytes(f"bench-{i}.bin")
        ours.append(time.perf_counter() - t)
        assert back == data
        t = time.perf_counter()
        async with sftp.open(f"{bare_dir}/bench-{i}.bin", "wb") as f:
            await f.write(data)
        async with sftp.open(f"{bare_dir}/bench-{i}.bin", "rb") as f:
            back = await f.read()
        bare.append(time.perf_counter() - t)
        assert back == data
    ratios.append(row("10 MB round trip", ours, bare, 1.3))
    sftp.exit()

    # ---------------------------------------------------------------- start + close
    ours, bare = [], []
    for i in range(n_start):
        t = time.perf_counter()
        s2 = await rt.create_sandbox("ssh", opts).start()
        await s2.close()
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        c2 = await bare_connect()
        d = f"{bare_dir}/s{i}"
        await c2.run(f"mkdir -p {d}/work {d}/home {d}/tmp", check=True)
        await c2.run(f"rm -rf {d}", check=True)
        c2.close()
        await c2.wait_closed()
        bare.append(time.perf_counter() - t)
    row("start + close", ours, bare, None)

    await sb.close()
    await rt.aclose()
    await conn.run(f"rm -rf {bare_dir}; rmdir {root.replace('~', home)} 2>/dev/null; true")
    conn.close()
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="few iterations (CI smoke)")
    sys.exit(asyncio.run(main(ap.parse_args().quick)))
