"""Opt-in: one group through HermesAtroposEnv against a real model server (plumbing only: a
small model's arguments are nonsense).

    HERMES_TEST_LLM_URL=http://127.0.0.1:8000/v1          # vLLM-style (or SGLang: HERMES_TEST_LLM_API=sglang)
    HERMES_TEST_LLM_TOKENIZER=/path/to/tokenizer-folder    # or a .gguf file (needs the `gguf` package)
    HERMES_TEST_LLM_TEXT_ONLY=1                            # the server returns text only (llama.cpp)
    pytest -m llm plugins/hermes_atropos/tests/test_llm.py
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from test_env import make_env

pytestmark = [pytest.mark.llm, pytest.mark.skipif(not os.environ.get("HERMES_TEST_LLM_URL"),
                                                 reason="set HERMES_TEST_LLM_URL (and HERMES_TEST_LLM_TOKENIZER)")]


def tokenizer_folder(tmp_path: Path) -> Path:
    src = Path(os.environ["HERMES_TEST_LLM_TOKENIZER"])
    if src.suffix != ".gguf":
        return src
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    out = tmp_path / "tokenizer"
    tok.save_pretrained(str(out))
    return out


async def test_one_group_against_a_real_model(tmp_path):
    from transformers import AutoTokenizer

    folder = tokenizer_folder(tmp_path)
    env = make_env(folder, os.environ["HERMES_TEST_LLM_URL"], group_size=2, max_token_length=2048,
                   environment_config={"tasks": ["hello-file"], "max_turns": 3}, max_tokens_per_turn=128,
                   completions_api=os.environ.get("HERMES_TEST_LLM_API", "vllm"),
                   allow_text_only=os.environ.get("HERMES_TEST_LLM_TEXT_ONLY") == "1",
                   tool_call_parser=os.environ.get("HERMES_TEST_LLM_PARSER", "hermes"))
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
