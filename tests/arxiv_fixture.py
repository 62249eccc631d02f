"""A loopback server speaking the arXiv API's protocol (Atom 1.0 with opensearch and arxiv namespaces)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse
from xml.sax.saxutils import escape


@dataclass
class AtomEntry:
    arxiv_id: str
    version: int
    title: str
    authors: list[str]
    published: str  # ISO date
    updated: str
    abstract: str
    categories: list[str] = field(default_factory=lambda: ["cs.CL"])

    def xml(self) -> str:
        vid = f"{self.arxiv_id}v{self.version}"
        authors = "".join(f"<author><name>{escape(a)}</name></author>" for a in self.authors)
        cats = "".join(f'<category term="{c}" scheme="http://arxiv.org/schemas/atom"/>' for c in self.categories)
        return (
            f"<entry><id>http://arxiv.org/abs/{vid}</id>"
            f"<updated>{self.updated}T12:00:00Z</updated><published>{self.published}T12:00:00Z</published>"
            f"<title>{escape(self.title)}</title><summary>{escape(self.abstract)}</summary>{authors}"
            f'<link href="http://arxiv.org/abs/{vid}" rel="alternate" type="text/html"/>'
            f'<link title="pdf" href="http://arxiv.org/pdf/{vid}" rel="related" type="application/pdf"/>'
            f'<arxiv:primary_category xmlns:arxiv="http://arxiv.org/schemas/atom" term="{self.categories[0]}" '
            f'scheme="http://arxiv.org/schemas/atom"/>{cats}</entry>'
        )


def feed(entries: list[AtomEntry], start: int, page_size: int) -> bytes:
    page = entries[start : start + page_size]
    body = "".join(e.xml() for e in page)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" '
        'xmlns:arxiv="http://arxiv.org/schemas/atom">'
        '<link href="http://arxiv.org/api/query" rel="self" type="application/atom+xml"/>'
        '<title type="html">ArXiv Query</title><id>http://arxiv.org/api/fixture</id>'
        "<updated>2025-07-01T00:00:00-04:00</updated>"
        f"<opensearch:totalResults>{len(entries)}</opensearch:totalResults>"
        f"<opensearch:startIndex>{start}</opensearch:startIndex>"
        f"<opensearch:itemsPerPage>{page_size}</opensearch:itemsPerPage>{body}</feed>"
    ).encode()


class ArxivServer:
    """mode: 'ok' serves the entries; 'error' answers 500; 'slow' sleeps before answering.
    pdfs: the bytes served at /pdf/<id>, as arxiv.org serves papers (other ids: 404)."""

    def __init__(self, entries: list[AtomEntry], mode: str = "ok", delay_s: float = 3.0,
                 pdfs: dict[str, bytes] | None = None) -> None:  # fmt: skip
        self.entries = entries
        self.pdfs = pdfs or {}
        self.mode = mode
        self.delay_s = delay_s
        self.requests: list[dict[str, list[str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                query = parse_qs(urlparse(self.path).query)
                server.requests.append(query)
                if server.mode == "error":
                    self.send_error(500, "fixture failure")
                    return
                if server.mode == "slow":
                    time.sleep(server.delay_s)
                if self.path.startswith("/pdf/"):
                    pdf = server.pdfs.get(self.path.removeprefix("/pdf/"))
                    if pdf is None:
                        self.send_error(404, "no such paper")
                        return
                    self.send_response(200)
                    self.send_header("Content-Type", "application/pdf")
                    self.send_header("Content-Length", str(len(pdf)))
                    self.end_headers()
                    self.wfile.write(pdf)
                    return
                start = int(query.get("start", ["0"])[0])
                size = int(query.get("max_results", ["10"])[0])
                body = feed(server.entries, start, size)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/atom+xml; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/query"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ArxivServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
