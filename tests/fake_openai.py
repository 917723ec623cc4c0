"""A tiny OpenAI-compatible HTTP server on 127.0.0.1 for engine tests.

It answers /v1/completions and /v1/chat/completions with canned text; `fail_first`
requests get HTTP 500 first, so retries can be observed.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI:
    def __init__(self, text: str = " 2 + 2 = 4. The answer is 4.\nProblem: next", fail_first: int = 0):
        self.text = text
        self.fail_first = fail_first
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):  # noqa: N802 - http.server naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests.append({"path": self.path, "body": body,
                                           "auth": self.headers.get("Authorization")})
                    fail = len(outer.requests) <= outer.fail_first
                if fail:
                    self.send_response(500)
                    self.end_headers()
                    return
                chat = self.path.endswith("/chat/completions")
                choices = [({"message": {"content": outer.text}} if chat else {"text": outer.text})
                           | {"index": i, "finish_reason": "stop"} for i in range(body.get("n", 1))]
                data = json.dumps({"choices": choices,
                                   "usage": {"completion_tokens": 7 * len(choices)}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
