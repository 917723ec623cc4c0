"""A tiny OpenAI-compatible HTTP server on 127.0.0.1 for engine tests.

It answers /v1/completions and /v1/chat/completions with canned text; `fail_first`
requests get HTTP 500 first, so retries can be observed. A prompt longer than
`max_prompt_chars` (0: no limit) gets HTTP 400, as `vllm serve` answers a prompt over
max_model_len.

`fault` makes requests misbehave (the first `faults` of them, or all when None), for
the engine-fault tests (tests/guarantees/test_faults.py):
  http500    HTTP 500 with an error body
  http401    HTTP 401 (not retryable)
  malformed  HTTP 200 whose body is not JSON
  empty      HTTP 200 with "choices": []
  slow       the answer comes after `delay_s` seconds (longer than the client's timeout)
  hang       reads the request and never answers (until the server stops)
  trickle    sends headers and then one body byte every 0.1 s, never finishing
  close      closes the connection without a response
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI:
    FAULTS = ("http500", "http401", "malformed", "empty", "slow", "hang", "trickle", "close")

    def __init__(self, text: str = " 2 + 2 = 4. The answer is 4.\nProblem: next", fail_first: int = 0,
                 fault: str | None = None, faults: int | None = None, delay_s: float = 5.0,
                 finish_reason: str = "stop", max_prompt_chars: int = 0):
        if fault is not None and fault not in self.FAULTS:
            raise ValueError(f"fault: expected one of {self.FAULTS}, got {fault!r}")
        self.text = text
        self.finish_reason = finish_reason  # "length": the answer was cut off at max_tokens
        self.fail_first = fail_first
        self.max_prompt_chars = max_prompt_chars
        self.fault, self.faults, self.delay_s = fault, faults, delay_s
        self.requests: list[dict] = []
        self.in_flight = 0  # requests being answered now
        self.max_in_flight = 0  # the most at once: what a concurrency limit allowed, without timing it
        self.lock = threading.Lock()
        self.stopping = threading.Event()  # releases hanging handlers at shutdown
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):  # noqa: N802 - http.server naming
                with outer.lock:
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    self._answer()
                finally:
                    with outer.lock:
                        outer.in_flight -= 1

            def _answer(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests.append({"path": self.path, "body": body, "t": time.monotonic(),
                                           "auth": self.headers.get("Authorization")})
                    n = len(outer.requests)
                    fail = n <= outer.fail_first
                    fault = outer.fault if outer.faults is None or n <= outer.faults else None
                if fail:
                    self.send_response(500)
                    self.end_headers()
                    return
                if fault and self._fault(fault):
                    return
                size = len(body.get("prompt") or "") + sum(len(m["content"]) for m in body.get("messages") or [])
                if outer.max_prompt_chars and size > outer.max_prompt_chars:
                    data = json.dumps({"error": {"message": f"This model's maximum context length is "
                                                            f"{outer.max_prompt_chars} characters; the prompt "
                                                            f"has {size}", "code": 400}}).encode()
                    self.send_response(400)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                chat = self.path.endswith("/chat/completions")
                # text: one string for every answer, or a function (request body, choice index) -> str
                texts = [outer.text(body, i) if callable(outer.text) else outer.text for i in range(body.get("n", 1))]
                choices = [({"message": {"content": t}} if chat else {"text": t})
                           | {"index": i, "finish_reason": outer.finish_reason} for i, t in enumerate(texts)]
                data = json.dumps({"choices": choices,
                                   "usage": {"completion_tokens": 7 * len(choices)}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _fault(self, fault: str) -> bool:
                """Misbehave; True when the request is finished (no normal answer)."""
                if fault == "slow":
                    outer.stopping.wait(outer.delay_s)
                    return False
                if fault == "hang":
                    outer.stopping.wait()
                    self.close_connection = True
                    return True
                if fault == "close":
                    self.close_connection = True
                    return True
                if fault == "trickle":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    while not outer.stopping.is_set():
                        try:
                            self.wfile.write(b" ")
                            self.wfile.flush()
                        except OSError:  # the client gave up
                            break
                        time.sleep(0.1)
                    self.close_connection = True
                    return True
                status, body = {"http500": (500, b'{"error": "internal"}'),
                                "http401": (401, b'{"error": "bad key"}'),
                                "malformed": (200, b'{"choices": [{"text": "cut off'),
                                "empty": (200, b'{"choices": []}')}[fault]
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return True

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False  # hanging handlers must not block shutdown

            def handle_error(self, request, client_address):  # a client that gave up: expected
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
