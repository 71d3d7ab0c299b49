"""Start the fake in a subprocess and stop it again (used by the tests, the eval test and the benchmark)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: Registry names the fake maps to local images (nothing can be pulled here).
DEFAULT_IMAGE_MAP = {"*": "hermes-test/debian:bookworm"}


@dataclass
class RunningFake:
    url: str
    instance: str
    faults_path: str
    proc: subprocess.Popen[bytes]
    log_path: str
    stats_path: str

    def stats(self) -> dict:
        """The fake's call counts (``calls``) and live sandboxes (``running``), as of ~0.2 s ago."""
        import time as _t

        _t.sleep(0.5)  # the fake rewrites the file every 0.2 s
        try:
            return json.loads(Path(self.stats_path).read_text())
        except (OSError, ValueError):
            return {"calls": {}, "running": 0, "sandboxes": 0, "unimplemented": []}

    def env(self) -> dict[str, str]:
        """Environment that points the real SDK at this fake (and at nothing else)."""
        return {
            "MODAL_SERVER_URL": self.url,
            "MODAL_TOKEN_ID": "ak-hermes-fake",
            "MODAL_TOKEN_SECRET": "as-hermes-fake",
            "MODAL_CONFIG_PATH": str(Path(self.faults_path).with_name("no-modal.toml")),
        }

    def set_faults(self, **faults: float) -> None:
        tmp = self.faults_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(faults, f)
        os.replace(tmp, self.faults_path)

    def stop(self) -> str:
        """Stop the fake (it removes its containers first); returns its log."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return Path(self.log_path).read_text(errors="replace")


def start_fake(*, image_map: dict[str, str] | None = None, token: tuple[str, str] | None = ("ak-hermes-fake", "as-hermes-fake"),
               workdir: str | None = None, timeout: float = 90,
               secrets: dict[str, dict[str, str]] | None = None) -> RunningFake:
    # $HERMES_MODAL_FAKE_DIR: where a CI run looks for the port files (and pids) of its fakes.
    d = workdir or tempfile.mkdtemp(prefix="hermes-fake-modal-", dir=os.environ.get("HERMES_MODAL_FAKE_DIR"))
    port_file, faults, log, stats = (os.path.join(d, n) for n in ("port.json", "faults.json", "fake.log", "stats.json"))
    with open(faults, "w") as f:
        f.write("{}")
    argv = [sys.executable, "-m", "fake", "--port-file", port_file, "--faults", faults, "--stats", stats,
            "--image-map", json.dumps(image_map or DEFAULT_IMAGE_MAP)]
    argv += ["--secrets", json.dumps(secrets if secrets is not None else {"hermes-test-secret": {"FROM_SECRET": "s3cr3t"}})]
    if token:
        argv += ["--token-id", token[0], "--token-secret", token[1]]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    with open(log, "wb") as logf:
        proc = subprocess.Popen(argv, cwd=str(HERE.parent), env=env, stdout=logf, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while not os.path.exists(port_file):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the Modal fake did not start: {Path(log).read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)
    info = json.loads(Path(port_file).read_text())
    return RunningFake(info["url"], info["instance"], faults, proc, log, stats)
