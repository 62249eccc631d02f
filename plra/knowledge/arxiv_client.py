"""The arXiv API client: the `arxiv` package's Client.results with a timeout, bounded retries and a rate limit.

The endpoint comes from the `arxiv_api_url` setting (env `ARXIV_API_URL`), so tests and mirrors can
point it at another server speaking the same Atom protocol.
"""

from __future__ import annotations

import datetime
import functools
import re
import time
from pathlib import Path
from urllib.parse import urljoin

import arxiv
import requests

from plra.errors import PlraError
from plra.io import write_bytes_atomic
from plra.settings import KnowledgeSettings
from plra.types import ARXIV_VERSIONED, IncomingPaper, arxiv_url

MAX_RESULTS_CAP = 500
# `plra kb update` wants what is new (newest first, so --since can stop early); the agent, answering one
# question, wants what matches it best, whatever its date.
SORTS = {"date": arxiv.SortCriterion.SubmittedDate, "relevance": arxiv.SortCriterion.Relevance}


def split_version(short_id: str) -> tuple[str, int]:
    """'2304.11406v2' -> ('2304.11406', 2); an id without a version is version 1."""
    match = ARXIV_VERSIONED.match(short_id)
    if not match:
        raise ValueError(f"unexpected arXiv id {short_id!r}")
    return match.group("id"), int(match.group("version") or 1)


def to_incoming(result: arxiv.Result) -> IncomingPaper:
    arxiv_id, version = split_version(result.get_short_id())
    return IncomingPaper(
        arxiv_id=arxiv_id,
        version=version,
        title=" ".join(result.title.split()),
        authors=[author.name for author in result.authors] or ["unknown"],
        year=result.published.year,
        published=result.published.date().isoformat(),
        updated=result.updated.date().isoformat(),
        categories=list(result.categories),
        source_abstract=" ".join(result.summary.split()),
        url=arxiv_url(arxiv_id),
        curated=False,
        fetched=datetime.date.today().isoformat(),
    )


class ArxivClient:
    def __init__(self, settings: KnowledgeSettings, page_size: int = 50) -> None:
        self.settings = settings
        self.client = arxiv.Client(
            page_size=page_size, delay_seconds=settings.arxiv_delay_s, num_retries=settings.arxiv_retries
        )
        self.client.query_url_format = settings.arxiv_api_url.split("?")[0] + "?{}"
        # The package sets no timeout: a stalled server would hang the command forever, and one that trickles a
        # byte a second would keep every read alive; each response is read against the search's deadline.
        session = self.client._session
        self._send = functools.partial(session.request, timeout=settings.arxiv_timeout_s, stream=True)
        session.request = self._bounded_request
        self._deadline = float("inf")

    def _bounded_request(self, method: str, url: str, **kwargs):
        kwargs.pop("stream", None)
        response = self._send(method, url, **kwargs)
        body = read_before(response, self._deadline, url)
        if response.ok and b"<feed" not in body[:2048]:
            raise PlraError(f"the arXiv API at {url.split('?')[0]} answered, but not with an Atom feed "
                            f"(first bytes {bytes(body[:40])!r}): check ARXIV_API_URL")  # fmt: skip
        response._content = bytes(body)  # what .text and .content read from now on
        return response

    def search(
        self, query: str, max_results: int = 20, since: datetime.date | None = None, sort: str = "date"
    ) -> list[IncomingPaper]:
        """Papers for query, newest first (sort="date") or best match first (sort="relevance"); raises
        PlraError (one line) when the API cannot be reached."""
        if not query.strip():
            raise PlraError("the arXiv query is empty")
        if sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
        max_results = max(1, min(max_results, MAX_RESULTS_CAP))
        search = arxiv.Search(
            query=query,
            max_results=max_results,
            sort_by=SORTS[sort],
            sort_order=arxiv.SortOrder.Descending,
        )
        url = self.settings.arxiv_api_url
        self._deadline = time.monotonic() + self.settings.arxiv_deadline_s
        for attempt in range(self.settings.arxiv_retries + 1):
            try:
                papers = []
                for result in self.client.results(search):
                    if since and result.published.date() < since:
                        if sort == "date":
                            break  # sorted newest first: the rest is older still
                        continue
                    papers.append(to_incoming(result))
                return papers
            except requests.exceptions.Timeout:
                if attempt == self.settings.arxiv_retries or time.monotonic() >= self._deadline:
                    raise PlraError(
                        f"the arXiv API at {url} did not answer within {self.settings.arxiv_timeout_s:.0f} s "
                        f"({attempt + 1} tries); try again later"
                    ) from None
                time.sleep(min(2**attempt, 8, max(0.0, self._deadline - time.monotonic())))
            except DeadlinePassed as err:
                raise PlraError(f"the arXiv API at {url} {err} (the search's deadline); try again later") from None
            except (arxiv.ArxivError, requests.exceptions.RequestException) as err:
                reason = re.sub(r"\s+", " ", str(err))[:160]
                raise PlraError(
                    f"cannot reach the arXiv API at {url}: {reason} (set ARXIV_API_URL for a mirror)"
                ) from None
        raise AssertionError("unreachable")


class DeadlinePassed(Exception):
    """A response still arriving when the whole call's time is up."""


def read_before(response, deadline: float, url: str, limit: int | None = None) -> bytearray:
    """The response body, read in blocks until the monotonic deadline (or the size limit) is passed."""
    data = bytearray()
    # read1 hands over what has arrived; iter_content would wait for a whole block, a byte a second.
    # decode_content: requests asks urllib3 for raw bytes; a gzip-encoded feed must arrive decoded.
    read = getattr(response.raw, "read1", None) or response.raw.read
    try:
        while block := read(1 << 16, decode_content=True):
            data += block
            if limit is not None and len(data) > limit:
                raise PlraError(f"{url} sent more than {limit >> 20} MB: not an arXiv paper PDF")
            if time.monotonic() > deadline:
                raise DeadlinePassed(f"was still sending after {len(data):,} bytes")
    finally:
        response.close()
    return data


MAX_PDF_BYTES = 50 * 2**20  # larger than any paper should be: a download or upload beyond it is refused


def pdf_url(settings: KnowledgeSettings, arxiv_id: str) -> str:
    """The PDF on the API's host: export.arxiv.org serves /pdf/<id> as arxiv.org does, and so do mirrors."""
    return urljoin(settings.arxiv_api_url, f"/pdf/{arxiv_id}")


def download_pdf(settings: KnowledgeSettings, arxiv_id: str, target: Path) -> Path:
    """Fetch one paper's PDF into target (atomically), with the API's timeout and bounded retries."""
    url = pdf_url(settings, arxiv_id)
    hint = "check the connection, give a local PDF path instead, or set ARXIV_API_URL for a mirror"
    deadline = time.monotonic() + settings.arxiv_deadline_s
    for attempt in range(settings.arxiv_retries + 1):
        try:
            with requests.get(url, timeout=settings.arxiv_timeout_s, stream=True) as response:
                if response.status_code == 404:
                    raise PlraError(f"arXiv has no PDF for {arxiv_id} at {url} (HTTP 404): check the id")
                if response.status_code >= 500 and attempt < settings.arxiv_retries:
                    time.sleep(min(2**attempt, 8))
                    continue
                response.raise_for_status()
                data = read_before(response, deadline, url, MAX_PDF_BYTES)
            if not data.startswith(b"%PDF"):
                raise PlraError(f"{url} did not return a PDF (first bytes {bytes(data[:16])!r})")
            write_bytes_atomic(target, bytes(data))
            return target
        except (requests.exceptions.Timeout, requests.exceptions.ConnectionError) as err:
            if attempt == settings.arxiv_retries:
                reason = "timed out" if isinstance(err, requests.exceptions.Timeout) else "connection failed"
                raise PlraError(f"cannot download {arxiv_id} from {url}: {reason} after {attempt + 1} tries; "
                                f"{hint}") from None  # fmt: skip
            time.sleep(min(2**attempt, 8))
        except DeadlinePassed as err:
            raise PlraError(f"cannot download {arxiv_id} from {url}: it {err} after {settings.arxiv_deadline_s:.0f} s; "
                            f"{hint}") from None  # fmt: skip
        except requests.exceptions.RequestException as err:
            raise PlraError(f"cannot download {arxiv_id} from {url}: {str(err)[:160]}; {hint}") from None
    raise AssertionError("unreachable")
