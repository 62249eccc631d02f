"""Loopback servers that misbehave the way real ones do: accept and never answer, stream without end, trickle a
byte a second, answer with garbage. Each speaks enough HTTP for a client to get that far and no further."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = ("silent", "endless_stream", "trickle", "garbage", "error500")


class HostileServer:
    def __init__(self, mode: str, model: str = "hostile") -> None:
        assert mode in MODES, mode
        self.mode = mode
        stop = self.stop = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def _send(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, json.dumps({"object": "list", "data": [{"id": model, "object": "model"}]}).encode())
                    return
                self.misbehave()

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.misbehave()

            def misbehave(self):
                if mode == "silent":
                    stop.wait(600)  # holds the connection, says nothing
                    return
                if mode == "error500":
                    self._send(500, b"")
                    return
                if mode == "garbage":
                    self._send(200, b"<html>this is not the API</html>")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream" if mode == "endless_stream" else "text/plain")
                self.end_headers()
                try:
                    while not stop.is_set():
                        if mode == "endless_stream":
                            chunk = {
                                "id": "c",
                                "object": "chat.completion.chunk",
                                "created": 0,
                                "model": model,
                                "choices": [{"index": 0, "delta": {"content": "la "}, "finish_reason": None}],
                            }
                            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())  # fmt: skip
                            time.sleep(0.01)
                        else:  # trickle
                            self.wfile.write(b"x")
                            self.wfile.flush()
                            time.sleep(1.0)
                except (BrokenPipeError, ConnectionResetError):
                    return

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> HostileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
