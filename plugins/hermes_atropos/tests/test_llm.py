"""Opt-in: one group through HermesAtroposEnv against a real model (plumbing only: a small
model's arguments are nonsense).

    HERMES_TEST_LLM_URL=gguf:/path/model.gguf              # serve a GGUF with llama-cpp-python (llama_shim.py)
    HERMES_TEST_LLM_URL=http://127.0.0.1:8000/v1          # or a running vLLM (SGLang: HERMES_TEST_LLM_API=sglang)
    HERMES_TEST_LLM_TOKENIZER=/path/to/tokenizer-folder    # or a .gguf file (needs the `gguf` package)
    HERMES_TEST_LLM_TEXT_ONLY=1                            # the server returns text only (llama.cpp)
    pytest -m llm plugins/hermes_atropos/tests/test_llm.py
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_env import make_env

pytestmark = [pytest.mark.llm, pytest.mark.skipif(not os.environ.get("HERMES_TEST_LLM_URL"),
                                                 reason="set HERMES_TEST_LLM_URL (and HERMES_TEST_LLM_TOKENIZER)")]


URL = os.environ.get("HERMES_TEST_LLM_URL", "")


@pytest.fixture
def llm_url(tmp_path):
    if not URL.startswith("gguf:"):
        yield URL
        return
    from helpers import free_port, stop_process

    port = free_port()
    log = (tmp_path / "llama.log").open("wb")
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("llama_shim.py")), URL[5:], str(port)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while b"ready" not in (tmp_path / "llama.log").read_bytes():
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "llama.log").read_text()
            time.sleep(0.5)
        time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop_process(proc)
        log.close()


def tokenizer_folder(tmp_path: Path) -> Path:
    src = Path(os.environ.get("HERMES_TEST_LLM_TOKENIZER") or URL[5:])
    return gguf_tokenizer_folder(src, tmp_path / "tokenizer") if src.suffix == ".gguf" else src


def gguf_tokenizer_folder(path: Path, dest: Path) -> Path:
    """A transformers tokenizer folder from a GGUF file's byte-level BPE vocabulary, merges,
    control tokens and chat template (transformers' own GGUF reader needs torch)."""
    import gguf
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    fields = {k: f.contents() for k, f in gguf.GGUFReader(str(path)).fields.items() if k.startswith("tokenizer.")}
    assert fields["tokenizer.ggml.model"] == "gpt2", "only byte-level BPE GGUF vocabularies are converted here"
    tokens = fields["tokenizer.ggml.tokens"]
    merges = [tuple(m.split(" ", 1)) for m in fields["tokenizer.ggml.merges"]]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = [t for t, kind in zip(tokens, fields["tokenizer.ggml.token_type"]) if kind == 3]
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=tokens[fields["tokenizer.ggml.eos_token_id"]],
                                   bos_token=tokens[fields["tokenizer.ggml.bos_token_id"]],
                                   additional_special_tokens=specials)
    fast.chat_template = fields.get("tokenizer.chat_template")
    fast.save_pretrained(str(dest))
    return dest


async def test_one_group_against_a_real_model(tmp_path, llm_url):
    from transformers import AutoTokenizer

    from hermes_plugins.parsers.testing import CHATML_TOOLS_TEMPLATE

    folder = tokenizer_folder(tmp_path)
    env = make_env(folder, llm_url, timeout=600, group_size=2, max_token_length=2048,
                   environment_config={"tasks": ["hello-file"], "max_turns": 2, "timeout": 1200}, max_tokens_per_turn=64,
                   completions_api=os.environ.get("HERMES_TEST_LLM_API", "vllm"),
                   allow_text_only=os.environ.get("HERMES_TEST_LLM_TEXT_ONLY") == "1",
                   tool_call_parser=os.environ.get("HERMES_TEST_LLM_PARSER", "hermes"),
                   # ChatML models (SmolLM2, Qwen, Hermes): a template that shows the tools
                   chat_template=CHATML_TOOLS_TEMPLATE if os.environ.get("HERMES_TEST_LLM_CHATML_TOOLS") == "1" else None)
    await env.setup()
    try:
        group, _ = await env.collect_trajectories(await env.get_next_item())
    finally:
        await env.aclose()
    assert group is not None, "the group was dropped: see the log for the infra failures"
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    assert len(group["tokens"]) == len(group["masks"]) == len(group["scores"]) == 2
    for tokens, masks, lps, messages, score in zip(group["tokens"], group["masks"], group["inference_logprobs"],
                                                    group["messages"], group["scores"]):
        assert len(tokens) == len(masks) == len(lps) > 0
        assert all(m == -100 or m == t for t, m in zip(tokens, masks))
        assert any(m != -100 for m in masks)
        assert math.isfinite(score) and 0.0 <= score <= 1.0
        assert messages[-1]["role"] in ("assistant", "tool")
        assert tokenizer.decode(tokens)  # decodes
    print("scores", group["scores"], "lengths", [len(t) for t in group["tokens"]],
          "trained", [sum(m != -100 for m in ms) for ms in group["masks"]],
          "tool calls", [sum(len(m.get("tool_calls") or []) for m in msgs) for msgs in group["messages"]])
