"""The arXiv API client: the `arxiv` package's Client.results with a timeout, bounded retries and a rate limit.

The endpoint comes from the `arxiv_api_url` setting (env `ARXIV_API_URL`), so tests and mirrors can
point it at another server speaking the same Atom protocol.
"""

from __future__ import annotations

import datetime
import functools
import re
import time

import arxiv
import requests

from plra.errors import PlraError
from plra.settings import KnowledgeSettings
from plra.types import ARXIV_VERSIONED, IncomingPaper, arxiv_url

MAX_RESULTS_CAP = 500


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
        # The package sets no timeout: a stalled server would hang the command forever.
        session = self.client._session
        session.request = functools.partial(session.request, timeout=settings.arxiv_timeout_s)

    def search(self, query: str, max_results: int = 20, since: datetime.date | None = None) -> list[IncomingPaper]:
        """Newest papers first for query; raises PlraError (one line) when the API cannot be reached."""
        if not query.strip():
            raise PlraError("the arXiv query is empty")
        max_results = max(1, min(max_results, MAX_RESULTS_CAP))
        search = arxiv.Search(
            query=query,
            max_results=max_results,
            sort_by=arxiv.SortCriterion.SubmittedDate,
            sort_order=arxiv.SortOrder.Descending,
        )
        url = self.settings.arxiv_api_url
        for attempt in range(self.settings.arxiv_retries + 1):
            try:
                papers = []
                for result in self.client.results(search):
                    if since and result.published.date() < since:
                        break  # sorted newest first: the rest is older still
                    papers.append(to_incoming(result))
                return papers
            except requests.exceptions.Timeout:
                if attempt == self.settings.arxiv_retries:
                    raise PlraError(
                        f"the arXiv API at {url} did not answer within {self.settings.arxiv_timeout_s:.0f} s "
                        f"({attempt + 1} tries); try again later"
                    ) from None
                time.sleep(min(2**attempt, 8))
            except (arxiv.ArxivError, requests.exceptions.RequestException) as err:
                reason = re.sub(r"\s+", " ", str(err))[:160]
                raise PlraError(
                    f"cannot reach the arXiv API at {url}: {reason} (set ARXIV_API_URL for a mirror)"
                ) from None
        raise AssertionError("unreachable")
