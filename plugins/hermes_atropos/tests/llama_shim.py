"""A vLLM-style ``/v1/completions`` server (token ids in, token ids + logprobs out) over a real
GGUF model through llama-cpp-python's Python API, on 127.0.0.1. llama-cpp-python's own server
takes text prompts only, so the opt-in real-model test uses this instead.

    python llama_shim.py MODEL.gguf PORT
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve(model_path: str, port: int) -> None:
    import numpy as np
    from llama_cpp import Llama

    llm = Llama(model_path=model_path, n_ctx=4096, logits_all=True, n_threads=2, verbose=False)
    eos = llm.token_eos()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            self._send(200, {"data": [{"id": "gguf"}]})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            prompt = body.get("prompt")
            if not isinstance(prompt, list) or not all(isinstance(i, int) for i in prompt):
                return self._send(400, {"error": "prompt must be token ids"})
            limit = int(body.get("max_tokens") or 64)
            temp = float(body.get("temperature", 0.7))
            out, lps, finish = [], [], "length"
            with lock:
                n = len(prompt)
                for tok in llm.generate(prompt, temp=temp, reset=True):
                    logits = np.asarray(llm.scores[n + len(out) - 1], dtype=np.float64)
                    m = logits.max()
                    lps.append(float(logits[tok] - m - np.log(np.exp(logits - m).sum())))
                    out.append(int(tok))
                    if tok == eos:
                        finish = "stop"
                        break
                    if len(out) >= limit or n + len(out) >= 4095:
                        break
            text = llm.detokenize(out).decode(errors="replace")
            self._send(200, {"choices": [{"index": 0, "text": text, "token_ids": out, "finish_reason": finish,
                                          "logprobs": {"tokens": [f"token_id:{i}" for i in out], "token_logprobs": lps}}]})

        def _send(self, code, obj):
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    print("ready", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
