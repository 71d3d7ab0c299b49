"""What the tests share: a local tokenizer (no download), the scripted terminal-test policy,
run-api on loopback, and a minimal trainer."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from hermes_plugins.parsers import get_parser
from hermes_plugins.parsers.testing import CHATML_TOOLS_TEMPLATE
from hermes_plugins.terminal_test.tasks import TASKS

HERMES = get_parser("hermes")
SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]
SOLUTIONS = {t.prompt: t.solution for t in TASKS}


def build_tokenizer(dest: Path) -> Path:
    """A byte-level BPE tokenizer trained here on a small corpus, saved as a transformers
    tokenizer folder with the ChatML + tools chat template (what ``--env.tokenizer_name`` takes)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [t.prompt for t in TASKS] + [t.solution for t in TASKS] + [CHATML_TOOLS_TEMPLATE] * 3 + [
        '{"name": "terminal", "arguments": {"command": "ls"}}', "exit_code output Done. tool_response"]
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=["<|im_start|>"])
    fast.chat_template = CHATML_TOOLS_TEMPLATE
    dest.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(dest))
    return dest


class TerminalTestPolicy:
    """A scripted model for terminal-test: the first request of each task solves it with the
    reference solution, the next fails it (``echo nope``), alternating — so every group of two
    has the scores 1 and 0. After a tool result it answers ``Done.``."""

    def __init__(self, fail_first: int = 0):
        self.seen: Counter[str] = Counter()
        self.fail_first = fail_first  # answer HTTP 500 to this many requests first
        self.lock = threading.Lock()
        self.calls = 0

    def __call__(self, prompt: str, index: int) -> str | None:
        with self.lock:
            self.calls += 1
            if self.calls <= self.fail_first:
                return None
        if "<tool_response>" in prompt:
            return "Done."
        task = next((p for p in SOLUTIONS if p in prompt), None)
        if task is None:
            return "I do not know this task."
        with self.lock:
            n = self.seen[task]
            self.seen[task] += 1
        command = SOLUTIONS[task] if n % 2 == 0 else "echo nope"
        return HERMES.render([{"function": {"name": "terminal", "arguments": json.dumps({"command": command})}}],
                             content="Running it.")


def solved(messages: list[dict[str, Any]]) -> bool:
    """Whether the scripted model ran the reference solution in this conversation."""
    for m in messages:
        for c in m.get("tool_calls") or []:
            if json.loads(c["function"]["arguments"]).get("command") != "echo nope":
                return True
    return False


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http(method: str, url: str, body: Any = None, timeout: float = 10) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


class RunApi:
    """``run-api --host 127.0.0.1 --port P`` as a subprocess, stopped by PID."""

    def __init__(self, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        exe = Path(sys.executable).with_name("run-api")
        self.log = log.open("wb")
        self.proc = subprocess.Popen([str(exe), "--host", "127.0.0.1", "--port", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                if http("GET", self.url + "/", timeout=2).get("message"):
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"run-api did not start (see {log})")
            time.sleep(0.2)

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)


def register_trainer(api: str, *, batch_size: int, max_token_len: int, num_steps: int, checkpoint_dir: str) -> Any:
    """The trainer's side of run-api: register (then the first /batch starts the run)."""
    return http("POST", api + "/register", {
        "wandb_group": "test", "wandb_project": "test", "batch_size": batch_size, "max_token_len": max_token_len,
        "checkpoint_dir": checkpoint_dir, "save_checkpoint_interval": -1, "starting_step": 0, "num_steps": num_steps})


def pull_batch(api: str, timeout: float, proc: subprocess.Popen | None = None) -> list[dict[str, Any]]:
    """Poll ``GET /batch`` until a batch arrives (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = http("GET", api + "/batch").get("batch")
        if batch:
            return batch
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the env process exited with {proc.returncode} before a batch arrived")
        time.sleep(0.5)
    raise TimeoutError(f"no batch from run-api within {timeout:g}s")


def env_cmd(mode: str, config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "hermes_atropos", mode, "--config", str(config), *extra]


ROLE_RE = re.compile(r"<\|im_start\|>(\w+)")
