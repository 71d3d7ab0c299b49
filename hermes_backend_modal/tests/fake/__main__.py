"""Run the Modal fake in its own process: ``python -m fake --port-file PATH [options]``.

Writes ``{"url", "instance", "router", "pid"}`` (JSON) to the port file once both servers listen; on SIGTERM/SIGINT it
removes every container it created, then exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal

from .server import FakeModal, serve


async def main() -> None:
    p = argparse.ArgumentParser(prog="python -m fake")
    p.add_argument("--port-file", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--faults", default=None, help="JSON file with Faults fields (re-read on every create)")
    p.add_argument("--stats", default=None, help="JSON file the fake keeps current: call counts, live sandboxes")
    p.add_argument("--image-map", default="{}", help='JSON: {"python:*": "hermes-test/debian:bookworm", ...}')
    p.add_argument("--secrets", default="{}", help='JSON: named Modal Secrets, {"name": {"KEY": "value"}}')
    p.add_argument("--token-id", default=os.environ.get("FAKE_MODAL_TOKEN_ID"))
    p.add_argument("--token-secret", default=os.environ.get("FAKE_MODAL_TOKEN_SECRET"))
    a = p.parse_args()
    token = (a.token_id, a.token_secret) if a.token_id else None
    fake = FakeModal(image_map=json.loads(a.image_map), faults_path=a.faults, stats_path=a.stats, token=token,
                     named_secrets=json.loads(a.secrets))
    control, router, url = await serve(fake, port=a.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"url": url, "instance": fake.instance, "router": fake.router_url, "pid": os.getpid()}, f)
    os.replace(tmp, a.port_file)
    try:
        await stop.wait()
    finally:
        control.close()
        router.close()
        await fake.close()
        if fake.unimplemented:
            print("fake-modal: unimplemented RPCs called:", sorted(set(fake.unimplemented)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
