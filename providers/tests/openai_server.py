"""A local HTTP server that speaks the OpenAI API (chat completions, streaming, embeddings,
models) and validates requests the way the real API does: bearer key, known model, message
shapes. It stands in for OpenAI at the HTTP boundary only; the project's client code is real.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_KEY = "sk-test-123"
CHAT_MODELS = {"gpt-4o-mini", "ft:gpt-4o-mini:acme::abc123"}
EMBEDDING_MODELS = {"text-embedding-3-small": 1536}


def fake_embedding(text: str, dims: int) -> list[float]:
    """Deterministic unit vector per text (same text, same vector)."""
    seed = hashlib.sha256(text.encode()).digest()
    values = [((seed[i % 32] + i * 7) % 255) / 255 - 0.5 for i in range(dims)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


class Handler(BaseHTTPRequestHandler):
    server: OpenAIStubServer

    def log_message(self, *args):  # quiet
        pass

    def _error(self, status: int, message: str, type_: str, code: str | None = None):
        self._json(
            status, {"error": {"message": message, "type": type_, "param": None, "code": code}}
        )

    def _json(self, status: int, payload: dict):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {API_KEY}":
            self._error(
                401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )
            return False
        return True

    def do_GET(self):
        if not self._authorized():
            return
        if self.path.rstrip("/").endswith("/models"):
            models = sorted(CHAT_MODELS | set(EMBEDDING_MODELS))
            self._json(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": 0, "owned_by": "stub"}
                        for m in models
                    ],
                },
            )
        else:
            self._error(404, "Not found", "invalid_request_error")

    def do_POST(self):
        self.server.requests.append(self.path)
        if not self._authorized():
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        except json.JSONDecodeError:
            return self._error(
                400, "We could not parse the JSON body of your request.", "invalid_request_error"
            )
        self.server.bodies.append(body)
        if self.server.fail_next:
            self.server.fail_next -= 1
            return self._error(503, "The server is overloaded.", "server_error")
        if self.path.endswith("/chat/completions"):
            return self._chat(body)
        if self.path.endswith("/embeddings"):
            return self._embeddings(body)
        self._error(404, f"Unknown path {self.path}", "invalid_request_error")

    def _chat(self, body):
        model, messages = body.get("model"), body.get("messages")
        if model not in CHAT_MODELS:
            return self._error(
                404,
                f"The model `{model}` does not exist.",
                "invalid_request_error",
                "model_not_found",
            )
        if (
            not isinstance(messages, list)
            or not messages
            or not all(
                isinstance(m, dict)
                and m.get("role") in {"system", "user", "assistant"}
                and isinstance(m.get("content"), str)
                for m in messages
            )
        ):
            return self._error(400, "Invalid 'messages'.", "invalid_request_error")
        last = messages[-1]["content"]
        # A test scripts what the model says next (server.replies), else it echoes the question.
        reply = self.server.replies.pop(0) if self.server.replies else f"Stub answer to: {last}"
        words = reply.split(" ")
        if body.get("max_tokens"):
            words = words[: int(body["max_tokens"])]
        created = int(time.time())
        if body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for i, word in enumerate(words):
                chunk = {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"content": (" " if i else "") + word},
                            "finish_reason": None,
                        }
                    ],
                }
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            done = {
                "id": "chatcmpl-stub",
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
            self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
            return
        self._json(
            200,
            {
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": " ".join(words)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": 10,
                    "completion_tokens": len(words),
                    "total_tokens": 10 + len(words),
                },
            },
        )

    def _embeddings(self, body):
        model, inputs = body.get("model"), body.get("input")
        if model not in EMBEDDING_MODELS:
            return self._error(
                404,
                f"The model `{model}` does not exist.",
                "invalid_request_error",
                "model_not_found",
            )
        if isinstance(inputs, str):
            inputs = [inputs]
        if (
            not isinstance(inputs, list)
            or not inputs
            or not all(isinstance(t, str) and t for t in inputs)
        ):
            return self._error(
                400,
                "'input' must be a non-empty string or array of strings.",
                "invalid_request_error",
            )
        dims = int(body.get("dimensions") or EMBEDDING_MODELS[model])
        self._json(
            200,
            {
                "object": "list",
                "model": model,
                "data": [
                    {"object": "embedding", "index": i, "embedding": fake_embedding(t, dims)}
                    for i, t in enumerate(inputs)
                ],
                "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
            },
        )


class OpenAIStubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[str] = []
        self.bodies: list[dict] = []
        self.fail_next = 0
        self.replies: list[str] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()
