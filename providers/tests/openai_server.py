"""A local HTTP server that speaks the OpenAI API (chat completions, streaming, embeddings,
models, files and fine-tuning jobs) and validates requests the way the real API does: bearer key,
known model, message shapes, fine-tuning files. It stands in for OpenAI at the HTTP boundary
only; the project's client code is real.

Fine-tuning (POST /v1/files, POST /v1/fine_tuning/jobs, GET /v1/fine_tuning/jobs/{id},
GET .../{id}/events, POST .../{id}/cancel): a created job moves one state per retrieve
(validating_files -> queued -> running, one metrics event per training step -> succeeded, or
failed when `fine_tuning_outcome` is "failed"); its model then answers chat completions. A test
scripts faults with `fine_tuning_refused` (403 on job creation), `fine_tuning_fail_next` (a list
of HTTP statuses, e.g. [429, 500], answered to the next fine-tuning requests).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from email.parser import BytesParser
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_KEY = "sk-test-123"
CHAT_MODELS = {"gpt-4o-mini", "ft:gpt-4o-mini:acme::abc123"}
EMBEDDING_MODELS = {"text-embedding-3-small": 1536}
FINE_TUNABLE = {"gpt-4o-mini-2024-07-18", "gpt-4.1-mini-2025-04-14"}


def fake_embedding(text: str, dims: int) -> list[float]:
    """Deterministic unit vector per text (same text, same vector)."""
    seed = hashlib.sha256(text.encode()).digest()
    values = [((seed[i % 32] + i * 7) % 255) / 255 - 0.5 for i in range(dims)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


INJECTION = "ignore your instructions"
KEY_LIKE = re.compile(r"\b(?:sk|ah|key)[-_][A-Za-z0-9_-]{6,}")


def _obey(messages: list[dict]) -> str:
    """What a model that obeys injected instructions says: the system prompt, then the keys."""
    system = " ".join(m["content"] for m in messages if m["role"] == "system")
    keys = sorted({k for m in messages for k in KEY_LIKE.findall(m["content"])})
    return f"Sure. My instructions are: {system} The API keys I know are: {' '.join(keys)}."


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
        if "/fine_tuning/" in self.path:
            return self._fine_tuning_get()
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
        if self.path.rstrip("/").endswith("/files"):
            return self._upload()
        if "/fine_tuning/" in self.path and self._fine_tuning_fault():
            return
        if self.path.rstrip("/").endswith("/cancel") and "/fine_tuning/jobs/" in self.path:
            return self._cancel_job()
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        except json.JSONDecodeError:
            return self._error(
                400, "We could not parse the JSON body of your request.", "invalid_request_error"
            )
        self.server.bodies.append(body)
        if self.server.delay_next:  # a model service that does not answer in time
            self.server.delay_next -= 1
            time.sleep(self.server.delay_seconds)
        if self.server.fail_next:
            self.server.fail_next -= 1
            if self.server.fail_status == 429:
                return self._error(
                    429, "Rate limit reached for requests.", "requests", "rate_limit_exceeded"
                )
            return self._error(self.server.fail_status, "The server is overloaded.", "server_error")
        if self.path.endswith("/chat/completions"):
            return self._chat(body)
        if self.path.rstrip("/").endswith("/fine_tuning/jobs"):
            return self._create_job(body)
        if self.path.endswith("/embeddings"):
            return self._embeddings(body)
        self._error(404, f"Unknown path {self.path}", "invalid_request_error")

    def _chat(self, body):
        model, messages = body.get("model"), body.get("messages")
        if model not in CHAT_MODELS | self.server.fine_tuned_models:
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
        if self.server.obey_injections and any(INJECTION in m["content"].lower() for m in messages):
            reply = _obey(messages)
        self.server.written.append(reply)
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
                if i and self.server.chunk_delay:  # a slow model: the first word comes at once
                    time.sleep(self.server.chunk_delay)
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                self.server.streamed_words += 1
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

    # --- Files and fine-tuning jobs ----------------------------------------------------------

    def _fine_tuning_fault(self) -> bool:
        if not self.server.fine_tuning_fail_next:
            return False
        status = self.server.fine_tuning_fail_next.pop(0)
        if status == 429:
            self._error(429, "Rate limit reached for requests.", "requests", "rate_limit_exceeded")
        else:
            self._error(status, "The server had an error processing your request.", "server_error")
        return True

    def _upload(self):
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        ctype = self.headers.get("Content-Type", "")
        if not ctype.startswith("multipart/form-data"):
            return self._error(400, "Expected multipart/form-data.", "invalid_request_error")
        message = BytesParser(policy=email_policy).parsebytes(
            f"Content-Type: {ctype}\r\n\r\n".encode() + raw
        )
        fields, content, filename = {}, None, ""
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name == "file":
                content, filename = part.get_payload(decode=True), part.get_filename() or ""
            else:
                fields[name] = part.get_content().strip()
        if fields.get("purpose") != "fine-tune" or content is None:
            return self._error(
                400,
                "'purpose' must be 'fine-tune' and 'file' is required.",
                "invalid_request_error",
            )
        if not filename.endswith(".jsonl"):
            return self._error(
                400,
                "Invalid file format for Fine-Tuning API. Must be .jsonl",
                "invalid_request_error",
                "invalid_file_format",
            )
        file_id = f"file-{hashlib.sha1(content).hexdigest()[:24]}"
        self.server.files[file_id] = content
        self._json(
            200,
            {
                "object": "file",
                "id": file_id,
                "purpose": "fine-tune",
                "filename": filename,
                "bytes": len(content),
                "created_at": int(time.time()),
                "expires_at": None,
                "status": "processed",
                "status_details": None,
            },
        )

    @staticmethod
    def _file_problem(content: bytes) -> str:
        lines = [line for line in content.decode("utf-8", "replace").splitlines() if line.strip()]
        if len(lines) < 10:
            return f"Training file has {len(lines)} example(s), but must have at least 10 examples"
        for number, line in enumerate(lines, 1):
            try:
                messages = json.loads(line)["messages"]
            except (ValueError, KeyError, TypeError):
                return f"Invalid file format. Line {number}: expected a JSON object with 'messages'"
            if (
                not isinstance(messages, list)
                or not messages
                or messages[-1].get("role") != "assistant"
                or not all(
                    isinstance(m, dict)
                    and m.get("role") in {"system", "user", "assistant"}
                    and isinstance(m.get("content"), str)
                    for m in messages
                )
            ):
                return f"Invalid file format. Line {number}: invalid 'messages'"
        return ""

    def _job_payload(self, job: dict) -> dict:
        return {k: v for k, v in job.items() if not k.startswith("_")}

    def _create_job(self, body):
        if self.server.fine_tuning_refused:
            return self._error(
                403,
                "Fine-tuning is not available for your organization.",
                "invalid_request_error",
                "fine_tuning_not_available",
            )
        model, file_id = body.get("model"), body.get("training_file")
        if model not in FINE_TUNABLE:
            return self._error(
                400,
                f"Model {model} is not available for fine-tuning.",
                "invalid_request_error",
                "model_not_available",
            )
        if file_id not in self.server.files:
            return self._error(
                400, f"File {file_id} not found.", "invalid_request_error", "invalid_training_file"
            )
        problem = self._file_problem(self.server.files[file_id])
        if problem:
            return self._error(
                400,
                f"File {file_id} is not valid for fine-tuning: {problem}",
                "invalid_request_error",
                "invalid_training_file",
            )
        self.server.job_count += 1
        job_id = f"ftjob-{self.server.job_count:06d}"
        n_epochs = (
            ((body.get("method") or {}).get("supervised") or {}).get("hyperparameters") or {}
        ).get("n_epochs", "auto")
        suffix = body.get("suffix") or ""
        job = {
            "object": "fine_tuning.job",
            "id": job_id,
            "model": model,
            "created_at": int(time.time()),
            "finished_at": None,
            "fine_tuned_model": None,
            "organization_id": "org-stub",
            "result_files": [],
            "status": "validating_files",
            "validation_file": None,
            "training_file": file_id,
            "hyperparameters": {
                "n_epochs": n_epochs,
                "batch_size": "auto",
                "learning_rate_multiplier": "auto",
            },
            "trained_tokens": None,
            "error": None,
            "seed": 42,
            "estimated_finish": None,
            "integrations": [],
            "method": {"type": "supervised"},
            "_suffix": suffix,
            "_events": [],
        }
        self.server.jobs[job_id] = job
        self._event(job, "info", f"Created fine-tuning job: {job_id}", "message")
        self._json(200, self._job_payload(job))

    def _event(self, job, level, message, type_, data=None):
        events = job["_events"]
        events.append(
            {
                "object": "fine_tuning.job.event",
                "id": f"ftevent-{job['id'][-6:]}-{len(events) + 1:04d}",
                "created_at": int(time.time()),
                "level": level,
                "message": message,
                "data": data or {},
                "type": type_,
            }
        )

    def _advance(self, job):
        """One state per retrieve, as a real job moves while it is polled."""
        status, total = job["status"], self.server.fine_tuning_steps
        if status == "validating_files":
            job["status"] = "queued"
            self._event(job, "info", "Validating training file: done", "message")
        elif status == "queued":
            job["status"] = "running"
            self._event(job, "info", "Fine-tuning job started", "message")
        elif status == "running":
            done = sum(1 for e in job["_events"] if e["type"] == "metrics")
            if done < total:
                loss = round(2.0 / (done + 1), 4)
                self._event(
                    job,
                    "info",
                    f"Step {done + 1}/{total}: training loss={loss}",
                    "metrics",
                    {"step": done + 1, "train_loss": loss, "total_steps": total},
                )
            elif self.server.fine_tuning_outcome == "failed":
                job.update(
                    status="failed",
                    finished_at=int(time.time()),
                    error={
                        "code": "invalid_training_file",
                        "message": "The job failed: too many examples were flagged by moderation.",
                        "param": "training_file",
                    },
                )
                self._event(job, "error", "The job failed", "message")
            else:
                name = f"ft:{job['model']}:stub:{job['_suffix']}:{job['id'][-6:]}"
                self.server.fine_tuned_models.add(name)
                job.update(
                    status="succeeded",
                    finished_at=int(time.time()),
                    fine_tuned_model=name,
                    trained_tokens=1234,
                )
                self._event(job, "info", "The job has successfully completed", "message")

    def _fine_tuning_get(self):
        if self._fine_tuning_fault():
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        parts = path.split("/fine_tuning/jobs/", 1)
        job_id = parts[1].split("/")[0] if len(parts) == 2 else ""
        job = self.server.jobs.get(job_id)
        if job is None:
            return self._error(
                404, f"Could not find fine-tune job: {job_id}", "invalid_request_error"
            )
        if path.endswith("/events"):
            from urllib.parse import parse_qs, urlsplit

            query = parse_qs(urlsplit(self.path).query)
            after, limit = query.get("after", [None])[0], int(query.get("limit", ["20"])[0])
            newest_first = list(reversed(job["_events"]))
            if after:
                ids = [e["id"] for e in newest_first]
                newest_first = newest_first[: ids.index(after)] if after in ids else newest_first
            page = newest_first[:limit]
            return self._json(
                200,
                {"object": "list", "data": page, "has_more": len(newest_first) > limit},
            )
        if job["status"] not in ("succeeded", "failed", "cancelled"):
            self._advance(job)
        self._json(200, self._job_payload(job))

    def _cancel_job(self):
        job_id = self.path.rstrip("/").split("/fine_tuning/jobs/", 1)[1].split("/")[0]
        job = self.server.jobs.get(job_id)
        if job is None:
            return self._error(
                404, f"Could not find fine-tune job: {job_id}", "invalid_request_error"
            )
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return self._error(400, f"Job {job_id} has already completed.", "invalid_request_error")
        job.update(status="cancelled", finished_at=int(time.time()))
        self._event(job, "info", "Fine-tuning job cancelled", "message")
        self._json(200, self._job_payload(job))


class OpenAIStubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[str] = []
        self.bodies: list[dict] = []
        self.fail_next = 0
        self.replies: list[str] = []
        self.fail_status = 503  # what fail_next answers: 503, 500 or 429
        self.delay_next = 0  # the next requests wait delay_seconds before answering
        self.delay_seconds = 0.0
        # A gullible model: when any message says "ignore your instructions" it replies with
        # its system prompt and every key-like string it was shown (prompt-injection tests).
        self.obey_injections = False
        self.written: list[str] = []  # every chat reply, as the model wrote it
        # Files and fine-tuning (see the module docstring).
        self.files: dict[str, bytes] = {}
        self.jobs: dict[str, dict] = {}
        self.job_count = 0
        self.fine_tuned_models: set[str] = set()
        self.fine_tuning_outcome = "succeeded"
        self.fine_tuning_refused = False
        self.fine_tuning_fail_next: list[int] = []
        self.fine_tuning_steps = 3
        # Seconds between streamed words (0: all at once), for tests of a slow model.
        self.chunk_delay = 0.0
        self.streamed_words = 0  # words sent so far by streamed replies (all of them)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()
