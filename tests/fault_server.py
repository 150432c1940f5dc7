"""A scripted OpenAI-compatible server on loopback, for faults a real server cannot be made to show.

This is a test double, and says so: it stands in for a remote endpoint that
rate-limits (429 with Retry-After), fails (500), hangs (timeout), drops the
connection, or sends malformed JSON or no choices. Everything that a real
server can show is tested against `transformers serve` instead.

Each request pops the next behaviour from ``script`` (the last one repeats):
``ok`` (streamed when asked), ``401``, ``429``, ``500``, ``hang``, ``drop``, ``badjson``, ``nochoices``,
``delay:<seconds>`` (then ok). It records every request (header names lower-cased) in
``requests`` so tests can check what arrived, e.g. the Authorization header.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FaultServer:
    def __init__(self, script: list[str] | None = None, reply: str = "A", retry_after: float = 0.05):
        self.script = list(script or ["ok"])
        self.reply = reply
        self.retry_after = retry_after
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                self._json(200, {"object": "list", "data": [{"id": "fault-model", "object": "model"}]})

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                    action = server.script.pop(0) if len(server.script) > 1 else server.script[0]
                if action.startswith("delay:"):
                    time.sleep(float(action.split(":", 1)[1]))
                    action = "ok"
                if action == "ok" and body.get("stream"):
                    self._stream(server.reply, body)
                elif action == "ok":
                    self._json(200, server._completion(body))
                elif action == "401":
                    self._json(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
                elif action == "429":
                    self._json(429, {"error": {"message": "rate limited", "type": "rate_limit"}},
                               {"Retry-After": str(server.retry_after)})
                elif action == "500":
                    self._json(500, {"error": {"message": "boom", "type": "server_error"}})
                elif action == "hang":
                    server._stop.wait(30)
                elif action == "drop":
                    self.close_connection = True
                    self.connection.close()
                elif action == "badjson":
                    self._raw(200, b'{"id": "x", "choices": [', "application/json")
                elif action == "nochoices":
                    self._json(200, {"id": "x", "object": "chat.completion", "created": 0,
                                     "model": body.get("model", ""), "choices": []})
                else:
                    raise AssertionError(f"unknown action {action}")

            def _stream(self, text, body):
                """Server-sent events, as OpenAI streams: one delta per word, then [DONE]."""
                chunks = []
                for piece in [w + " " for w in text.split(" ")][:-1] + [text.split(" ")[-1]] if text else []:
                    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0,
                             "model": body.get("model", ""),
                             "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                    chunks.append(f"data: {json.dumps(chunk)}\n\n")
                chunks.append("data: [DONE]\n\n")
                data = "".join(chunks).encode()
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _json(self, status, obj, headers=None):
                self._raw(status, json.dumps(obj).encode(), "application/json", headers)

            def _raw(self, status, data, ctype, headers=None):
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        class QuietServer(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # a client hanging up is expected here
                pass

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _completion(self, body: dict) -> dict:
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fault-model"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": self.reply}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def calls(self) -> int:
        return len(self.requests)
