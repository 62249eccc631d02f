"""The data types every stage shares: papers, glossary terms, reading paths, search hits."""

from __future__ import annotations

import datetime
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# New-style ids (2304.11406) and old-style ids (cs.CL/0601001); no version suffix: an entry is a paper, not a version.
ARXIV_ID = re.compile(r"^(\d{4}\.\d{4,5}|[a-z\-]+(\.[A-Z]{2})?/\d{7})$")
ARXIV_VERSIONED = re.compile(r"^(?P<id>\d{4}\.\d{4,5}|[a-z\-]+(?:\.[A-Z]{2})?/\d{7})(?:v(?P<version>\d+))?$")
CJK = re.compile(r"[\u4e00-\u9fff]")
WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\-]*")
FIRST_YEAR = 1991  # arXiv opened in 1991


def check_arxiv_id(value: str) -> str:
    if not ARXIV_ID.match(value):
        raise ValueError(f"'{value}' is not an arXiv id like 2304.11406 (no version suffix)")
    return value


def id_year(arxiv_id: str) -> int | None:
    """The submission year encoded in a new-style id (2304.11406 -> 2023)."""
    return 2000 + int(arxiv_id[:2]) if re.match(r"^\d{4}\.", arxiv_id) else None


def bare_arxiv_id(ref: str) -> str | None:
    """'2304.11406', 'arXiv:2304.11406v2' or an arxiv.org abs/pdf URL -> '2304.11406'; None for anything else."""
    match = ARXIV_VERSIONED.match(re.sub(r"^(arxiv:|https?://arxiv\.org/(abs|pdf)/)", "", ref.strip(), flags=re.I))
    return match.group("id") if match else None


def arxiv_url(arxiv_id: str) -> str:
    return f"https://arxiv.org/abs/{arxiv_id}"


class PaperBase(BaseModel):
    """What every knowledge-base paper has, curated or just fetched."""

    model_config = ConfigDict(extra="forbid")

    arxiv_id: str
    title: str = Field(min_length=3)
    authors: list[str] = Field(min_length=1)
    year: int
    url: str
    curated: bool

    @field_validator("arxiv_id")
    @classmethod
    def _arxiv_id(cls, value: str) -> str:
        return check_arxiv_id(value)

    # The curated fields, on a curated entry and on an incoming one that a person is curating, checked alike.
    @field_validator("summary_en", check_fields=False)
    @classmethod
    def _english_summary(cls, text: str | None) -> str | None:
        return text if text is None else check_summary_en(text)

    @field_validator("summary_zh", check_fields=False)
    @classmethod
    def _chinese_summary(cls, text: str | None) -> str | None:
        return text if text is None else check_summary_zh(text)

    @field_validator("related", check_fields=False)
    @classmethod
    def _related_ids(cls, ids: list[str]) -> list[str]:
        return check_related(ids)

    @field_validator("year")
    @classmethod
    def _plausible_year(cls, year: int) -> int:
        if not FIRST_YEAR <= year <= datetime.date.today().year + 1:
            raise ValueError(f"year {year} is not plausible for an arXiv paper")
        return year

    @model_validator(mode="after")
    def _consistent(self):
        submitted = id_year(self.arxiv_id)
        # The year may be the venue's, one year after submission, never before it.
        if submitted and not submitted <= self.year <= submitted + 1:
            raise ValueError(f"year {self.year} does not fit arXiv id {self.arxiv_id} (submitted {submitted})")
        if self.url.rstrip("/") != arxiv_url(self.arxiv_id):
            raise ValueError(f"url must be {arxiv_url(self.arxiv_id)}")
        return self


def _words(text: str) -> int:
    return len(WORD.findall(text))


def check_summary_en(text: str) -> str:
    if CJK.search(text):
        raise ValueError("summary_en must be English (it contains Chinese characters)")
    if not 80 <= _words(text) <= 200:
        raise ValueError(f"summary_en must be 80-200 words, it has {_words(text)}")
    return text.strip()


def check_summary_zh(text: str) -> str:
    han = len(CJK.findall(text))
    if han < 100:
        raise ValueError(f"summary_zh must be Chinese of about 80-200 words (100+ characters), it has {han}")
    if len(text) > 700:
        raise ValueError(f"summary_zh is too long ({len(text)} characters, at most 700)")
    return text.strip()


def check_related(ids: list[str]) -> list[str]:
    for value in ids:
        check_arxiv_id(value)
    return ids


class Paper(PaperBase):
    """A curated entry: facts checked against the paper, summaries in our own words, in English and Chinese."""

    aliases: list[str] = []
    venue: str | None = None
    topics: list[str] = Field(min_length=1, max_length=4)
    summary_en: str
    summary_zh: str
    key_findings: list[str] = Field(min_length=1)
    methods: list[str] = []
    datasets: list[str] = []
    metrics: list[str] = []
    keywords: list[str] = []
    related: list[str] = []
    # The day the entry entered the curated set: `plra kb digest --since DATE` and the reviewed-through date.
    added: datetime.date | None = None
    curated: bool = True

    @model_validator(mode="after")
    def _not_self_related(self):
        if not self.curated:
            raise ValueError("curated must be true for an entry in papers/ (fetched papers live in incoming/)")
        if self.arxiv_id in self.related:
            raise ValueError("related lists the paper itself")
        return self


class IncomingPaper(PaperBase):
    """A paper fetched from arXiv and not yet curated: searchable, flagged, never used for training."""

    curated: bool = False
    version: int = 1
    published: str = ""
    updated: str = ""
    categories: list[str] = []
    source_abstract: str = ""  # arXiv's abstract, kept as local data for the user only
    fetched: str = ""
    # What the relevance gate of `plra kb update` found (plra.knowledge.relevance); None for entries fetched before it.
    relevance: float | None = Field(None, ge=0.0, le=1.0)
    nearest_curated: str | None = None  # the curated paper most like this one

    # The curated fields a person writes into the file before `plra kb promote` (README, "Adding a paper"):
    # optional here, checked as a curated entry's are when present.
    aliases: list[str] = []
    venue: str | None = None
    topics: list[str] = Field(default=[], max_length=4)
    summary_en: str | None = None
    summary_zh: str | None = None
    key_findings: list[str] = []
    methods: list[str] = []
    datasets: list[str] = []
    metrics: list[str] = []
    keywords: list[str] = []
    related: list[str] = []
    added: datetime.date | None = None

    @field_validator("nearest_curated")
    @classmethod
    def _nearest_id(cls, value: str | None) -> str | None:
        return value if value is None else check_arxiv_id(value)


class GlossaryTerm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    term: str = Field(min_length=2)
    aliases: list[str] = []
    names_zh: list[str] = []  # the Chinese names of the term, so a question in Chinese finds its entry
    en: str = Field(min_length=20)
    zh: str = Field(min_length=10)
    papers: list[str] = []

    @field_validator("zh")
    @classmethod
    def _chinese(cls, text: str) -> str:
        if not CJK.search(text):
            raise ValueError("zh must be written in Chinese")
        return text


class ReadingStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arxiv_id: str
    why_en: str = Field(min_length=10)
    why_zh: str = Field(min_length=5)


class ReadingPath(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    title_en: str
    title_zh: str
    audience_en: str = ""
    audience_zh: str = ""
    steps: list[ReadingStep] = Field(min_length=3)


class Topic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    en: str
    zh: str


class FieldCard(BaseModel):
    """`datasets/<field>/field.yaml`: the field's name and the day its review reaches."""

    model_config = ConfigDict(extra="forbid")

    name_en: str = Field(min_length=3)
    name_zh: str = Field(min_length=2)
    reviewed_through: datetime.date

    @field_validator("reviewed_through")
    @classmethod
    def _not_in_the_future(cls, day: datetime.date) -> datetime.date:
        if day > datetime.date.today():
            raise ValueError(f"reviewed_through {day} is in the future")
        return day


class SearchHit(BaseModel):
    arxiv_id: str
    title: str
    year: int
    score: float
    snippet: str
    curated: bool = True


class Passage(BaseModel):
    """A piece of one paper's text; it never crosses a page, so it always knows its page (1-based)."""

    page: int
    section: str
    text: str


class PaperText(BaseModel):
    """What `plra read` extracted from one PDF: its pages' text, cached beside the knowledge base."""

    key: str  # the arXiv id, or the first 16 hex digits of the PDF's sha256
    sha256: str
    title: str
    arxiv_id: str | None = None
    pages: list[str]


class OutlineSection(BaseModel):
    """One section of the paper outline template (`datasets/<field>/templates/outline.yaml`)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    title_en: str
    title_zh: str
    argue_en: str = Field(min_length=10)
    argue_zh: str = Field(min_length=5)
    query: str = "{topic}"
    topics: list[str] = []
    k: int = Field(default=3, ge=0, le=12)


class OutlineTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sections: list[OutlineSection] = Field(min_length=1)


CITATION = re.compile(r"\[arXiv:([^\]\s]+)\]")
OVERVIEW_SECTIONS = ("families", "choosing", "evidence", "benchmarks", "open_problems")


def cited_ids(text: str) -> list[str]:
    """The arXiv ids a text cites as [arXiv:ID], in order of first appearance."""
    return list(dict.fromkeys(CITATION.findall(text)))


class OverviewSection(BaseModel):
    """One part of a topic overview, in both languages, citing the same papers in each."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    en: str = Field(min_length=40)
    zh: str = Field(min_length=20)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in OVERVIEW_SECTIONS:
            raise ValueError(f"kind must be one of {', '.join(OVERVIEW_SECTIONS)}, not '{kind}'")
        return kind


class Overview(BaseModel):
    """A survey section on one taxonomy topic (`overviews/<topic>.yaml`): families, choosing, evidence,
    benchmarks, open problems, every sentence cited."""

    model_config = ConfigDict(extra="forbid")

    topic: str
    central: list[str] = Field(min_length=3, max_length=6)
    sections: list[OverviewSection]

    def section(self, kind: str) -> OverviewSection | None:
        return next((s for s in self.sections if s.kind == kind), None)

    def text(self, lang: str) -> str:
        return "\n\n".join(getattr(s, lang) for s in self.sections)


class Claim(BaseModel):
    """An evidence statement answering one of the field's recurring questions, with the papers for and against."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z\-]*-\d{2,3}$")
    topics: list[str] = Field(min_length=1, max_length=4)
    question_en: str = Field(min_length=10)
    question_zh: str = Field(min_length=5)
    claim_en: str = Field(min_length=20)
    claim_zh: str = Field(min_length=10)
    supports: list[str] = Field(min_length=1)
    contradicts: list[str] = []
    conditions_en: str = Field(min_length=10)
    conditions_zh: str = Field(min_length=5)
    # A confident answer that the evidence contradicts: the rejected side of a DPO pair, never shown to users.
    contrary_en: str | None = None
    contrary_zh: str | None = None

    def papers(self) -> list[str]:
        return [*self.supports, *self.contradicts]
