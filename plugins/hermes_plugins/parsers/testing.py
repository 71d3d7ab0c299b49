"""Test helpers for token-level rollouts without downloading a model: a byte-level tokenizer
with special tokens, a ChatML chat template with Hermes-style tools, and a scripted
completions server on loopback that speaks the vLLM (``/v1/completions`` with token ids) and
SGLang (``/generate``) wire formats.

The scripted server runs a policy ``policy(prompt_text, request_index) -> completion_text`` and
answers with the token ids of that text (plus the end-of-turn token) and deterministic logprobs.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ByteTokenizer", "CHATML_TOOLS_TEMPLATE", "ScriptedCompletionsServer", "logprob_for"]

SPECIALS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")

#: ChatML with tools in the Hermes / Qwen2.5 style: tool calls as <tool_call>{json}</tool_call>,
#: tool results as <tool_response> blocks in a ``tool`` turn.
CHATML_TOOLS_TEMPLATE = """\
{%- if tools %}<|im_start|>system
{% if messages[0].role == 'system' %}{{ messages[0].content }}

{% endif %}You may call functions. Signatures:
<tools>
{% for tool in tools %}{{ tool | tojson }}
{% endfor %}</tools>
Call one as <tool_call>
{"name": <name>, "arguments": <args>}
</tool_call><|im_end|>
{% elif messages[0].role == 'system' %}<|im_start|>system
{{ messages[0].content }}<|im_end|>
{% endif %}
{%- for m in messages %}
{%- if m.role == 'system' %}{% continue %}{% endif %}
{%- if m.role == 'assistant' %}<|im_start|>assistant
{{ m.content }}
{%- if m.tool_calls %}{% for tc in m.tool_calls %}{% if m.content or not loop.first %}{{ "\n" }}{% endif %}<tool_call>
{{ {"name": tc.function.name, "arguments": tc.function.arguments} | tojson }}
</tool_call>{% endfor %}{% endif %}<|im_end|>
{% elif m.role == 'tool' %}<|im_start|>tool
<tool_response>
{{ m.content }}
</tool_response><|im_end|>
{% else %}<|im_start|>{{ m.role }}
{{ m.content }}<|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""


class ByteTokenizer:
    """UTF-8 bytes as ids 0-255, special tokens as 256+ (a real, lossless tokenizer)."""

    bos_token = None
    eos_token = "<|im_end|>"

    def __init__(self, specials: Sequence[str] = SPECIALS):
        self.specials = list(specials)
        self._split = re.compile("(" + "|".join(re.escape(s) for s in self.specials) + ")")

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        ids: list[int] = []
        for part in self._split.split(text):
            if part in self.specials:
                ids.append(256 + self.specials.index(part))
            elif part:
                ids.extend(part.encode())
        return ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        out, buf = [], bytearray()
        for i in ids:
            if i >= 256:
                out.append(buf.decode(errors="replace"))
                buf = bytearray()
                if not skip_special_tokens:
                    out.append(self.specials[i - 256])
            else:
                buf.append(i)
        out.append(buf.decode(errors="replace"))
        return "".join(out)

    @property
    def eos_token_id(self) -> int:
        return 256 + self.specials.index(self.eos_token)


def logprob_for(position: int) -> float:
    """The scripted server's logprob of the completion token at ``position``."""
    return -round(0.01 + (position % 7) * 0.1, 4)


class ScriptedCompletionsServer:
    """An HTTP server on 127.0.0.1 answering completions from a policy, in a daemon thread.

    Args:
        tokenizer: encodes the policy's text and decodes prompts (same as the agent's).
        policy: ``policy(prompt_text, request_index) -> completion_text`` (or ``None`` → HTTP 500).
        end_of_turn: appended to every completion (as the model's stop token).
        token_ids: answer with token ids (vLLM's ``return_tokens_as_token_ids``); ``False``
            answers like text-only servers (llama.cpp): token strings, no ids.
    """

    def __init__(self, tokenizer: Any, policy: Callable[[str, int], str | None], *, end_of_turn: str = "<|im_end|>",
                 token_ids: bool = True):
        self.token_ids = token_ids
        self.tokenizer = tokenizer
        self.policy = policy
        self.end_of_turn = end_of_turn
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._send(200, {"data": [{"id": "scripted"}]} if self.path.endswith("/models") else {"status": "ok"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError:
                    return self._send(400, {"error": "bad json"})
                if self.path.rstrip("/").endswith("/completions"):
                    ids = body.get("prompt")
                elif self.path.rstrip("/").endswith("/generate"):
                    ids = body.get("input_ids")
                else:
                    return self._send(404, {"error": f"no route {self.path}"})
                if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
                    return self._send(400, {"error": "prompt must be a list of token ids"})
                with outer._lock:
                    index = len(outer.requests)
                    outer.requests.append({"path": self.path, "body": body})
                text = outer.policy(outer.tokenizer.decode(ids, skip_special_tokens=False), index)
                if text is None:
                    return self._send(500, {"error": "scripted failure"})
                out = list(outer.tokenizer.encode(text + outer.end_of_turn, add_special_tokens=False))
                limit = body.get("max_tokens") or (body.get("sampling_params") or {}).get("max_new_tokens")
                finish = "stop"
                if limit is not None and len(out) > int(limit):
                    out, finish = out[: int(limit)], "length"
                lps = [logprob_for(k) for k in range(len(out))]
                if self.path.rstrip("/").endswith("/completions"):
                    tokens = [f"token_id:{i}" if outer.token_ids else outer.tokenizer.decode([i]) for i in out]
                    choice = {"index": 0, "text": outer.tokenizer.decode(out), "finish_reason": finish,
                              "logprobs": {"tokens": tokens, "token_logprobs": lps}}
                    if body.get("return_token_ids") and outer.token_ids:
                        choice["token_ids"] = out
                    self._send(200, {"id": f"cmpl-{index}", "object": "text_completion", "model": body.get("model"),
                                     "choices": [choice],
                                     "usage": {"prompt_tokens": len(ids), "completion_tokens": len(out)}})
                else:
                    self._send(200, {"text": outer.tokenizer.decode(out), "output_ids": out, "meta_info": {
                        "output_token_logprobs": [[lp, i, None] for lp, i in zip(lps, out)],
                        "finish_reason": {"type": finish}}})

            def _send(self, code: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="scripted-completions", daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> ScriptedCompletionsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
