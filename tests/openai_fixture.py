"""A loopback server speaking the OpenAI chat-completions protocol (JSON and server-sent events), answering
with scripted replies in order: the stand-in for a model whose outputs a test must control. A reply may be a
function of the request (to play a model that, say, obeys any instruction it is shown)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedOpenAI:
    def __init__(self, replies: list, model: str = "internlm2-chat-7b") -> None:
        self.replies = list(replies)
        self.model = model
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    data = {"object": "list", "data": [{"id": server.model, "object": "model", "owned_by": "test"}]}
                    self._send(200, json.dumps(data).encode())
                else:
                    self._send(404, b"{}")

            def do_POST(self):
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(request)
                reply = server.replies.pop(0) if server.replies else "Nothing more to say."
                text = reply(request) if callable(reply) else reply
                now = int(time.time())
                if not request.get("stream"):
                    body = {
                        "id": "c1",
                        "object": "chat.completion",
                        "created": now,
                        "model": server.model,
                        "choices": [
                            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
                        ],
                    }
                    self._send(200, json.dumps(body).encode())
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for piece in [text[i : i + 8] for i in range(0, len(text), 8)]:
                    chunk = {
                        "id": "c1",
                        "object": "chat.completion.chunk",
                        "created": now,
                        "model": server.model,
                        "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                    }
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ScriptedOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
