"""Hybrid search over the knowledge base: BM25 (bm25s; jieba for Chinese, Snowball stems for English),
plus dense embeddings when a local sentence-embedding model is configured, fused by reciprocal rank.

Each paper is one document made of its title, aliases, keywords, summaries, findings, methods,
datasets and the glossary terms that cite it (so a question worded like a definition finds the papers
that explain the term). The index is persisted under `datasets/<field>/.index/` and rebuilt whenever
the knowledge base's content hash changes.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import typer

from plra.errors import PlraError
from plra.knowledge import kb as kb_module
from plra.settings import KnowledgeSettings, load_knowledge
from plra.types import CJK, IncomingPaper, Paper, SearchHit

MAX_QUERY_CHARS = 2000
RRF_K = 60  # the usual reciprocal-rank-fusion constant: damps the influence of any single ranker's top ranks
INDEX_VERSION = 4  # bump when the document text, the tokenizer or the saved files change

TOKEN = re.compile(r"[\u4e00-\u9fff]+|[a-z0-9]+")
# Words that say nothing about which paper is meant (split once at import; kept as text to stay readable).
EN_STOP = frozenset(
    """a an and are as at be by can do does for from has have how i in into is it its me my of on or that the their
    them these this those to was we what when where which who why will with you your there than then about any some
    such paper papers work works study approach method methods model models llm llms large language show shows find
    found use used using""".split()
)
ZH_STOP = frozenset(
    """的 了 和 与 及 是 在 有 哪些 哪个 什么 怎么 如何 吗 呢 一个 一种 这个 那些 我 我们 你 用 对 中 为
    把 被 让 论文 研究 工作 模型 大 语言""".split()
)


@functools.cache
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


@functools.cache
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def tokenize(text: str) -> list[str]:
    """Lower-cased tokens: Snowball stems for English words, jieba search-mode words for Chinese runs."""
    tokens: list[str] = []
    english: list[str] = []
    for match in TOKEN.finditer(text.lower()):
        piece = match.group()
        if CJK.match(piece):
            tokens.extend(w for w in _jieba().cut_for_search(piece) if w.strip() and w not in ZH_STOP)
        elif piece not in EN_STOP and (len(piece) > 1 or piece.isdigit()):
            english.append(piece)
    return tokens + _stemmer().stemWords(english)


def is_chinese(text: str) -> bool:
    return len(CJK.findall(text)) >= max(2, len(text.strip()) // 10)


@dataclass
class Doc:
    arxiv_id: str
    title: str
    year: int
    topics: list[str]
    curated: bool
    text_en: str
    text_zh: str
    search_text: str


def document(paper: Paper | IncomingPaper, terms: list) -> Doc:
    """The searchable text of one paper. Title, aliases and keywords are repeated: they weigh more."""
    if isinstance(paper, Paper):
        head = " ".join([paper.title, *paper.aliases, *paper.keywords])
        glossary = " ".join(f"{t.term} {' '.join(t.aliases)} {t.en} {t.zh}" for t in terms)
        body = " ".join(
            [paper.summary_en, paper.summary_zh, *paper.key_findings, *paper.methods, *paper.datasets, glossary]
        )
        return Doc(
            paper.arxiv_id,
            paper.title,
            paper.year,
            paper.topics,
            True,
            paper.summary_en,
            paper.summary_zh,
            f"{head} {head} {body}",
        )
    text = f"{paper.title} {paper.title} {paper.source_abstract}"
    return Doc(paper.arxiv_id, paper.title, paper.year, [], False, paper.source_abstract, "", text)


def snippet(doc: Doc, query_tokens: set[str], chinese: bool, width: int = 220) -> str:
    """The sentence of the summary (in the query's language) that shares most tokens with the query."""
    text = doc.text_zh if chinese and doc.text_zh else doc.text_en
    sentences = [s.strip() for s in re.split(r"(?<=[.!?。！？])\s*", text) if s.strip()] or [doc.title]
    # Substring overlap rather than re-tokenizing every sentence: this runs once per hit, on the query path.
    best = max(sentences, key=lambda s: sum(token in s.lower() for token in query_tokens))
    return best if len(best) <= width else best[: width - 1] + "…"


class DenseEncoder:
    """Mean-pooled sentence embeddings from a local transformers model (no hub access)."""

    def __init__(self, model_dir: Path) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        if not (model_dir / "config.json").exists():
            raise PlraError(f"embedding_model {model_dir} holds no config.json: point it at a local HF model folder")
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModel.from_pretrained(model_dir).eval()

    def encode(self, texts: list[str], batch_size: int = 16) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(
                texts[start : start + batch_size], padding=True, truncation=True, max_length=256, return_tensors="pt"
            )
            with self.torch.no_grad():
                hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out.append(self.torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 1), dtype=np.float32)


def _bm25(corpus_tokens: list[list[str]]):
    import bm25s

    bm25 = bm25s.BM25()
    bm25.index(corpus_tokens, show_progress=False)
    return bm25


class SearchIndex:
    def __init__(
        self,
        docs: list[Doc],
        bm25,
        embeddings: np.ndarray | None = None,
        encoder=None,
        curated: SearchIndex | None = None,
    ) -> None:
        self.docs = docs
        self.bm25 = bm25
        self.embeddings = embeddings
        self.encoder = encoder
        self.vocab = set(bm25.vocab_dict) if docs else set()
        self.years = np.array([d.year for d in docs])
        self._curated = curated

    @classmethod
    def build(cls, knowledge: kb_module.KnowledgeBase, settings: KnowledgeSettings) -> SearchIndex:
        papers: list[Paper | IncomingPaper] = [*knowledge.papers.values(), *knowledge.incoming.values()]
        docs = [document(p, knowledge.terms_for(p.arxiv_id)) for p in papers]
        encoder = DenseEncoder(settings.embedding_model) if settings.embedding_model else None
        return cls.from_docs(docs, encoder)

    @classmethod
    def from_docs(cls, docs: list[Doc], encoder: DenseEncoder | None = None) -> SearchIndex:
        corpus = [tokenize(d.search_text) for d in docs]
        embeddings = encoder.encode([f"{d.title}. {d.text_en}" for d in docs]) if encoder else None
        curated = [i for i, d in enumerate(docs) if d.curated]
        # The curated papers' own index comes from the same tokens: tokenizing is what building costs.
        sub = cls([docs[i] for i in curated], _bm25([corpus[i] for i in curated])) if len(curated) < len(docs) else None
        return cls(docs, _bm25(corpus), embeddings, encoder, sub)

    def curated_only(self) -> SearchIndex:
        """The same index over the curated papers alone: what decides whether a question or a fetched paper
        belongs to the field, so that uncurated papers in incoming/ never move that line (their words would
        otherwise count as the field's, and change the BM25 weights the refusal thresholds were fitted on)."""
        if self._curated is None and not all(d.curated for d in self.docs):
            self._curated = SearchIndex.from_docs([d for d in self.docs if d.curated])
        return self._curated or self

    def save(self, folder: Path, content_hash: str, settings: KnowledgeSettings) -> None:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".index-"))
        self.bm25.save(tmp / "bm25", show_progress=False)
        if self.curated_only() is not self:
            self.curated_only().bm25.save(tmp / "bm25-curated", show_progress=False)
        if self.embeddings is not None:
            np.save(tmp / "dense.npy", self.embeddings)
        meta = {
            "version": INDEX_VERSION,
            "hash": content_hash,
            "embedding_model": str(settings.embedding_model or ""),
            "docs": [asdict(d) for d in self.docs],
        }
        (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False))
        for stale in folder.parent.glob(".index-*"):  # what a rebuild killed midway left behind
            if stale != tmp:
                shutil.rmtree(stale, ignore_errors=True)
        if folder.exists():  # the old index leaves by a rename, so a crash here leaves one complete index
            old = folder.parent / f".index-old-{os.getpid()}"
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(folder)

    @classmethod
    def load(cls, folder: Path, content_hash: str, settings: KnowledgeSettings) -> SearchIndex | None:
        """The saved index, or None when it is missing or stale (other content, model or format)."""
        import bm25s

        try:
            meta = json.loads((folder / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        current = (INDEX_VERSION, content_hash, str(settings.embedding_model or ""))
        if (meta.get("version"), meta.get("hash"), meta.get("embedding_model")) != current:
            return None
        bm25 = bm25s.BM25.load(folder / "bm25", show_progress=False, verbosity=0)
        docs = [Doc(**d) for d in meta["docs"]]
        dense = folder / "dense.npy"
        embeddings = np.load(dense) if dense.exists() else None
        encoder = DenseEncoder(settings.embedding_model) if settings.embedding_model else None
        curated = None
        if (folder / "bm25-curated").exists():
            sub_bm25 = bm25s.BM25.load(folder / "bm25-curated", show_progress=False, verbosity=0)
            curated = cls([d for d in docs if d.curated], sub_bm25)
        return cls(docs, bm25, embeddings, encoder, curated)

    def bm25_scores(self, query_tokens: list[str]) -> np.ndarray:
        """The BM25 score of every document for the tokens (zeros when the index knows none of them)."""
        known = [t for t in query_tokens if t in self.vocab]
        if not known:
            return np.zeros(len(self.docs))
        return np.asarray(self.bm25.get_scores(known))

    def search(self, query: str, k: int = 5, year_from: int | None = None, topic: str | None = None) -> list[SearchHit]:
        query = query.strip()
        if not query:
            raise PlraError("the query is empty: ask about a method, a problem or a paper")
        if len(query) > MAX_QUERY_CHARS:
            print(f"note: the query was cut to its first {MAX_QUERY_CHARS} characters", file=sys.stderr)
            query = query[:MAX_QUERY_CHARS]
        if k < 1:
            raise PlraError(f"-k must be at least 1, got {k}")
        tokens = tokenize(query)
        allowed = np.ones(len(self.docs), dtype=bool)
        if year_from is not None:
            allowed &= self.years >= year_from
        if topic is not None:
            allowed &= np.array([topic in d.topics for d in self.docs], dtype=bool)
        scores = self.bm25_scores(tokens)
        candidates = np.flatnonzero(allowed & (scores > 0))
        rankings = [candidates[np.argsort(-scores[candidates], kind="stable")]]
        if self.embeddings is not None and self.encoder is not None:
            dense = self.embeddings @ self.encoder.encode([query])[0]
            pool = np.flatnonzero(allowed)
            rankings.append(pool[np.argsort(-dense[pool], kind="stable")][: max(50, k * 5)])
        fused: dict[int, float] = {}
        for ranking in rankings:
            for rank, index in enumerate(ranking[: max(100, k * 10)]):
                fused[int(index)] = fused.get(int(index), 0.0) + 1.0 / (RRF_K + rank + 1)
        best = sorted(fused, key=lambda i: (-fused[i], -scores[i]))[:k]
        chinese = is_chinese(query)
        token_set = set(tokens)
        return [
            SearchHit(
                arxiv_id=self.docs[i].arxiv_id,
                title=self.docs[i].title,
                year=self.docs[i].year,
                score=round(fused[i], 6),
                snippet=snippet(self.docs[i], token_set, chinese),
                curated=self.docs[i].curated,
            )
            for i in best
        ]

    def hit(self, arxiv_id: str) -> SearchHit:
        """One paper as a search hit, for a paper chosen by name or by a reading path rather than by rank."""
        i = next((i for i, d in enumerate(self.docs) if d.arxiv_id == arxiv_id), None)
        if i is None:
            raise PlraError(f"arXiv:{arxiv_id} is not in the index: run `plra kb validate`")
        doc = self.docs[i]
        return SearchHit(arxiv_id=doc.arxiv_id, title=doc.title, year=doc.year, score=0.0,
                         snippet=snippet(doc, set(), False), curated=doc.curated)  # fmt: skip


def index_dir(settings: KnowledgeSettings) -> Path:
    return settings.field_dir / ".index"


def open_index(
    settings: KnowledgeSettings | None = None, knowledge: kb_module.KnowledgeBase | None = None
) -> SearchIndex:
    """The persisted index, rebuilt (and saved) first when the knowledge base changed since it was built."""
    settings = settings or load_knowledge()
    # A knowledge base just loaded knows its files' hash: reading every file again would only repeat it.
    digest = knowledge.digest if knowledge is not None and knowledge.digest else kb_module.content_hash(settings)
    index = SearchIndex.load(index_dir(settings), digest, settings)
    if index is not None:
        return index
    # One process rebuilds; the others wait for it and load what it saved (four `plra search` after an edit
    # once raced on the swap and one of them crashed).
    with rebuild_lock(settings):
        index = SearchIndex.load(index_dir(settings), digest, settings)
        if index is None:
            index = SearchIndex.build(knowledge or kb_module.load(settings), settings)
            index.save(index_dir(settings), digest, settings)
    return index


@contextlib.contextmanager
def rebuild_lock(settings: KnowledgeSettings) -> Iterator[None]:
    """An exclusive lock on the index folder's rebuild, held by the open file (released if the process dies)."""
    import fcntl

    path = settings.field_dir / ".index.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ------------------------------------------------------------------------------------ evaluation


class PlainBM25:
    """The baseline: rank_bm25 over whitespace tokens of title + English summary (an abstract-length text)."""

    def __init__(self, docs: list[Doc]) -> None:
        from rank_bm25 import BM25Okapi

        self.ids = [d.arxiv_id for d in docs]
        self.bm25 = BM25Okapi([f"{d.title} {d.text_en}".lower().split() for d in docs])

    def rank(self, query: str, k: int) -> list[str]:
        scores = self.bm25.get_scores(query.lower().split())
        return [self.ids[i] for i in np.argsort(-scores, kind="stable")[:k]]


def load_questions(path: Path) -> list[dict]:
    from plra.io import read_jsonl

    if not path.exists():
        raise PlraError(f"no retrieval benchmark at {path}")
    try:
        rows = read_jsonl(path)
    except ValueError as err:
        raise PlraError(str(err)) from None
    for number, row in enumerate(rows, start=1):
        if not row.get("question") or not row.get("gold") or row.get("lang") not in ("en", "zh"):
            raise PlraError(f"{path}: row {number}: needs 'question', 'gold' (arXiv ids) and 'lang' (en or zh)")
    return rows


def score_rankings(rankings: list[list[str]], golds: list[list[str]]) -> dict[str, float]:
    """recall@1, recall@5 (a gold paper among the top k) and mean reciprocal rank."""
    r1 = r5 = mrr = 0.0
    for ranking, gold in zip(rankings, golds, strict=True):
        ranks = [ranking.index(g) + 1 for g in gold if g in ranking]
        first = min(ranks) if ranks else None
        r1 += first == 1
        r5 += first is not None and first <= 5
        mrr += 1.0 / first if first else 0.0
    n = max(len(rankings), 1)
    return {"recall@1": round(r1 / n, 4), "recall@5": round(r5 / n, 4), "mrr": round(mrr / n, 4), "n": len(rankings)}


def evaluate(index: SearchIndex, questions: list[dict], depth: int = 20) -> dict[str, dict[str, dict[str, float]]]:
    """Scores of our search and of the plain baseline, per language and overall."""
    baseline = PlainBM25([d for d in index.docs if d.curated])
    report: dict[str, dict[str, dict[str, float]]] = {}
    for lang in ("en", "zh", "all"):
        subset = [q for q in questions if lang in ("all", q["lang"])]
        golds = [q["gold"] for q in subset]
        ours = [[h.arxiv_id for h in index.search(q["question"], k=depth)] for q in subset]
        base = [baseline.rank(q["question"], depth) for q in subset]
        report[lang] = {"plra": score_rankings(ours, golds), "baseline": score_rankings(base, golds)}
    return report


# ---------------------------------------------------------------------------------------------- CLI


def search_command(
    query: str,
    k: int = typer.Option(5, "-k", help="number of papers"),
    year_from: int = typer.Option(None, "--year-from", help="only papers from this year on"),
    topic: str = typer.Option(None, "--topic", help="only papers with this taxonomy topic"),
    as_json: bool = typer.Option(False, "--json", help="a JSON array of {arxiv_id, title, year, score, snippet}"),
) -> None:
    """Search the knowledge base (English, Chinese or mixed queries)."""
    hits = open_index().search(query, k=k, year_from=year_from, topic=topic)
    if as_json:
        typer.echo(json.dumps([h.model_dump(exclude={"curated"}) for h in hits], ensure_ascii=False))
        return
    if not hits:
        typer.echo("no matching papers")
    for rank, hit in enumerate(hits, start=1):
        flag = "" if hit.curated else " [uncurated]"
        typer.echo(f"{rank}. [arXiv:{hit.arxiv_id}] {hit.title} ({hit.year}){flag}  score {hit.score:.4f}")
        typer.echo(f"   {hit.snippet}")


def eval_command(as_json: bool = typer.Option(False, "--json", help="print one JSON object")) -> None:
    """Retrieval quality on benchmark/retrieval.jsonl: recall@1, recall@5, MRR, ours vs a plain BM25 baseline."""
    settings = load_knowledge()
    questions = load_questions(settings.field_dir / "benchmark" / "retrieval.jsonl")
    report = evaluate(open_index(settings), questions)
    if as_json:
        typer.echo(json.dumps(report))
        return
    typer.echo(f"{'questions':10s} {'system':9s} {'n':>4s} {'R@1':>6s} {'R@5':>6s} {'MRR':>6s}")
    for lang, systems in report.items():
        for system, scores in systems.items():
            typer.echo(
                f"{lang:10s} {system:9s} {scores['n']:4d} {scores['recall@1']:6.3f} {scores['recall@5']:6.3f} "
                f"{scores['mrr']:6.3f}"
            )
