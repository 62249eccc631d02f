"""The Gradio app: chat (Ask or Agent) with cited answers; Read (one paper, answers cited by page); Write
(related work, outlines, ideas, with BibTeX to download); Papers; Learn; Settings.

`app.py` at the repository root starts it (the OpenXLab convention); the port comes from the environment
(`GRADIO_SERVER_PORT`, then `PORT`, else 7860). With no endpoint configured (PLRA_ENDPOINT), Ask answers at once,
composed from the knowledge base; a visitor may opt in to the in-process tiny model in Settings.

Uploads: Read accepts only PDFs under PLRA_APP_MAX_PDF_MB (default 20) that Gradio itself stored in its
upload folder; a path from anywhere else is refused, so no request can make the app read a server file.

Load: each request that waits on a model ends by PLRA_APP_REQUEST_TIMEOUT_S (default 60), with the answer composed
from the knowledge base and a note; each event runs PLRA_APP_CONCURRENCY requests at once (default 4), of which
model calls take at most all but one, so quick answers always have a worker; PLRA_APP_QUEUE_MAX requests (default
64) wait, and the next one is told the assistant is busy.
"""

from __future__ import annotations

import functools
import html
import os
import queue
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr

from plra.assistant.answer import COMPOSED, AskResult, Assistant, Citation, LocalModel, local_model_dir, review_note
from plra.assistant.conversation import standalone
from plra.errors import PlraError
from plra.llm import LLMTimeout
from plra.prompts import NOT_REVIEWED
from plra.types import bare_arxiv_id

MAX_INPUT_CHARS = 2000
MAX_HISTORY_TURNS = 6
MAX_PDF_MB = float(os.environ.get("PLRA_APP_MAX_PDF_MB", "20"))
MAX_TOKENS = int(os.environ.get("PLRA_APP_MAX_TOKENS", "320"))
WRITE_ACTIONS = ["Related work", "Outline", "Ideas"]
EXAMPLES = [
    "What is pluralistic alignment, and which papers should I read first?",
    "How do LaMP and LongLaMP differ?",
    "个性化大模型有哪些常用的评测基准？",
    "检索增强和参数高效微调在个性化上各有什么优缺点？",
]


T = TypeVar("T")


@dataclass(frozen=True)
class AppSettings:
    """How much load the app takes: each request's deadline, requests run at once per event, requests waiting."""

    request_timeout_s: float = 60.0
    concurrency: int = 4
    queue_max: int = 64


APP_VARIABLES = {
    "request_timeout_s": "PLRA_APP_REQUEST_TIMEOUT_S",
    "concurrency": "PLRA_APP_CONCURRENCY",
    "queue_max": "PLRA_APP_QUEUE_MAX",
}


def app_settings(environ: dict[str, str] | None = None) -> AppSettings:
    """The app's load settings from PLRA_APP_* variables; a bad value is one line naming its variable."""
    environ = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    for name, variable in APP_VARIABLES.items():
        raw = environ.get(variable, "").strip()
        if not raw:
            continue
        kind = type(getattr(AppSettings, name))
        try:
            value = kind(raw)
        except ValueError:
            raise PlraError(f"{variable}={raw!r} must be a {'number' if kind is float else 'whole number'}") from None
        if value <= 0:
            raise PlraError(f"{variable}={raw!r} must be above 0")
        values[name] = value
    return AppSettings(**values)


class ModelSlots:
    """Model calls in flight across the app, at most `size`. Set one below the concurrency, it keeps a worker of
    every event free for answers that need no model (Papers only), however slow the model server is."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._free = threading.BoundedSemaphore(self.size)

    def take(self) -> bool:
        return self._free.acquire(blocking=False)

    def give_back(self) -> None:
        self._free.release()


@functools.cache
def _slots(size: int) -> ModelSlots:
    return ModelSlots(size)


def model_slots() -> ModelSlots:
    return _slots(max(1, app_settings().concurrency - 1))


class ModelBusy(PlraError):
    """Every model slot is taken: the request is answered without the model, at once."""


def fallback_note(err: PlraError, seconds: float, source: str = "the knowledge base") -> str:
    """Why this answer comes without the model: all slots busy, or no answer by the request's deadline."""
    if isinstance(err, ModelBusy):
        busy = f"The model is answering {model_slots().size} other question(s) right now"
        return f"_{busy}, so this answer is composed from {source} (no model); ask again in a minute for the model's._"
    late = f"The model did not answer within {seconds:g} s (the app's PLRA_APP_REQUEST_TIMEOUT_S)"
    return f"_{late}, so this answer is composed from {source} (no model)._"


def model_events(work: Callable[[Callable[[str], None]], T], seconds: float) -> Iterator[tuple[bool, Any]]:
    """Run work(on_piece) in a thread of its own that holds a model slot; yield (False, piece) for each piece it
    streams, then (True, its result). A model call that hangs leaves the Gradio worker free at the deadline:
    LLMTimeout is raised then (the thread ends with the client's own timeout and gives its slot back only then,
    since the server is still busy with it). ModelBusy when every slot is taken; else what work raised."""
    slots = model_slots()
    if not slots.take():
        raise ModelBusy(f"all {slots.size} model slot(s) are busy")
    events: queue.Queue = queue.Queue()

    def run() -> None:
        try:
            events.put((True, work(lambda piece: events.put((False, piece)))))
        except BaseException as err:  # handed to the request's thread
            events.put((None, err))
        finally:
            slots.give_back()

    threading.Thread(target=run, daemon=True).start()
    deadline = time.monotonic() + seconds
    while True:
        try:
            done, value = events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise LLMTimeout(f"the model did not answer within {seconds:g} s") from None
        if done is None:
            raise value
        yield done, value
        if done:
            return


def with_model(work: Callable[[], T], seconds: float) -> T:
    """work()'s result, under model_events' slot and deadline."""
    for done, value in model_events(lambda _piece: work(), seconds):
        if done:
            return value
    raise AssertionError("model_events ended without a result")


@functools.cache
def assistant() -> Assistant:
    return Assistant()


@functools.cache
def local_model() -> LocalModel:
    return LocalModel(local_model_dir(), max_tokens=MAX_TOKENS)


def server_endpoint() -> str:
    """The model server this app uses: the server's own setting (PLRA_ENDPOINT, or `plra serve`'s record), never a
    request's, so no visitor can make the app connect to an address of their choosing."""
    from plra.llm import default_endpoint

    return (default_endpoint() or "").strip()


def client_for(use_local: bool, temperature: float, max_tokens: int):
    """The configured server; else the in-process model when the visitor opted in; else None: the composer answers
    at once from the knowledge base (a 135M model on a CPU takes minutes and is set aside more often than not)."""
    endpoint = server_endpoint()
    if endpoint:
        from plra.llm import LLMClient

        # The client's own timeout is the request's, so a call the request gave up on ends soon after it too.
        timeout_s = app_settings().request_timeout_s
        return LLMClient.from_url(endpoint, temperature=temperature, max_tokens=max_tokens, timeout_s=timeout_s)
    return local_model() if use_local else None


def sources_markdown(result: AskResult) -> str:
    if result.refused:
        return "_No sources: the question is outside the field._"
    by = "Composed from the knowledge base" if result.writer == COMPOSED else f"Written by {plain(result.writer)}"
    written = f"_{by}; citations checked._"
    # The panel is English; a source nobody has curated yet says so, as it does in the answer's own list.
    cited = [f"{i}. [{c.title}]({c.url}) ({c.year}), arXiv:{c.arxiv_id}{review_note(c, 'en')}"
             for i, c in enumerate(result.citations, 1)]  # fmt: skip
    read = [f"- [{c.title}]({c.url}) ({c.year}){review_note(c, 'en')}" for c in result.passages
            if c not in result.citations]  # fmt: skip
    errors = [f"- removed arXiv:{e['cited']}: {e['reason']}" for e in result.citation_errors]
    parts = [written, "", "**Sources cited**", *(cited or ["_none_"])]
    if result.rewrite != "none":
        parts = [f"_Understood as: {result.query}_", "", *parts]
    if read:
        parts += ["", "**Also retrieved from the knowledge base**", *read]
    if errors:
        parts += ["", "**Citations removed**", *errors]
    return "\n".join(parts)


def plain_history(history: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The chat's messages as text-only OpenAI messages (Gradio may hold a message as a list of parts)."""
    plain = []
    for message in history or []:
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        if isinstance(content, str) and message.get("role") in ("user", "assistant") and content.strip():
            plain.append({"role": message["role"], "content": content})
    return plain


def respond(
    message: str, history: list[dict[str, str]], mode: str, use_local: bool = False, temperature: float = 0.2
) -> Iterator[tuple[list[dict[str, str]], str, str]]:
    """Answer into the chat, as a follow-up of the turns before it; yields (history, cleared input box,
    sources panel)."""
    message = (message or "").strip()[:MAX_INPUT_CHARS]
    history = list(history or [])[-2 * MAX_HISTORY_TURNS :]
    if not message:
        yield history, "", ""
        return
    earlier = plain_history(history)
    history += [{"role": "user", "content": message}, {"role": "assistant", "content": ""}]
    seconds = app_settings().request_timeout_s
    note = ""
    try:
        try:
            if mode == "Agent":
                result = agent_answer(message, earlier, seconds)
            else:
                llm = None if mode == "Papers only" else client_for(use_local, temperature, MAX_TOKENS)
                if llm is None:
                    result = assistant().ask(message, k=4, history=earlier)
                else:

                    def work(on_piece: Callable[[str], None]) -> AskResult:
                        return assistant().ask(message, llm=llm, k=4, on_token=on_piece, history=earlier)

                    for done, value in model_events(work, seconds):  # the raw answer as it streams in
                        if done:
                            result = value
                        else:
                            history[-1]["content"] += value
                            yield history, "", "_Writing… citations are checked when the answer is complete._"
        except (ModelBusy, LLMTimeout) as err:
            note = fallback_note(err, seconds)
            result = assistant().ask(message, k=4, history=earlier)
        history[-1]["content"] = f"{note}\n\n{result.answer}" if note else result.answer
        yield history, "", sources_markdown(result)
    except PlraError as err:
        history[-1]["content"] = f"⚠️ {err}"
        yield history, "", ""


def agent_answer(message: str, earlier: list[dict[str, str]], seconds: float) -> AskResult:
    """The Lagent agent's answer on the app's server, within the request's deadline."""
    endpoint = server_endpoint()
    if not endpoint:
        raise PlraError("the agent needs a served model: start the app with PLRA_ENDPOINT set (`plra serve`)")
    from plra.assistant import agent
    from plra.llm import LLMClient

    question = standalone(message, earlier, assistant().name_index).question
    client = LLMClient.from_url(endpoint, max_tokens=256, temperature=0.2, timeout_s=seconds)
    reply = with_model(lambda: agent.run(question, endpoint, client=client), seconds)
    return AskResult(reply["answer"], [Citation(**c) for c in reply["citations"]], reply["refused"],
                     reply["citation_errors"], writer="the Lagent agent")  # fmt: skip


# ------------------------------------------------------------------------------------------ Read


def upload_folder() -> Path:
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()).resolve()


def checked_upload(path: str) -> Path:
    """The uploaded file, if it is a PDF under the size cap inside Gradio's upload folder; else PlraError."""
    file = Path(path).resolve()
    if not file.is_relative_to(upload_folder()):
        raise PlraError("only a file uploaded through this page can be read")
    if file.suffix.lower() != ".pdf" or not file.is_file():
        raise PlraError("only PDF files can be read")
    if file.stat().st_size > MAX_PDF_MB * 2**20:
        raise PlraError(f"the PDF is larger than {MAX_PDF_MB:g} MB")
    with file.open("rb") as fh:
        if fh.read(5) != b"%PDF-":
            raise PlraError("the file is not a PDF (it does not start with %PDF-)")
    return file


@functools.lru_cache(maxsize=8)
def paper_reader(source: str):
    from plra.research.read import PaperReader

    return PaperReader.open(source, assistant())


def open_paper(upload: str | None, arxiv_id: str) -> tuple[str, str | None, list]:
    """Read the uploaded PDF or the arXiv id; returns (card, source for later questions, cleared chat)."""
    from plra.research.read import card_markdown

    try:
        if upload:
            source = str(checked_upload(upload))
        elif bare_arxiv_id(arxiv_id or ""):
            source = bare_arxiv_id(arxiv_id)
        else:
            raise PlraError("upload a PDF or give an arXiv id such as 2304.11406")
        return card_markdown(paper_reader(source).card(lang="en")), source, []
    except PlraError as err:
        return f"⚠️ {err}", None, []


def ask_paper(question: str, history: list[dict[str, str]], source: str | None, answer_mode: str,
              use_local: bool = False, temperature: float = 0.2) -> tuple[list[dict[str, str]], str]:  # fmt: skip
    question = (question or "").strip()[:MAX_INPUT_CHARS]
    history = list(history or [])[-2 * MAX_HISTORY_TURNS :]
    if not question:
        return history, ""
    try:
        if source is None:
            raise PlraError("open a paper first (upload a PDF or give an arXiv id, then press Read)")
        llm = None if answer_mode == "Passages only" else client_for(use_local, temperature, MAX_TOKENS)
        # "And compared with Mem0?": names from earlier turns travel with the question to the reader.
        standalone_question = standalone(question, plain_history(history), assistant().name_index).question
        reader, note = paper_reader(source), ""
        seconds = app_settings().request_timeout_s
        if llm is None:
            result = reader.ask(standalone_question)
        else:
            try:
                result = with_model(lambda: reader.ask(standalone_question, llm=llm), seconds)
            except (ModelBusy, LLMTimeout) as err:
                note = f"{fallback_note(err, seconds, 'the paper')}\n\n"
                result = reader.ask(standalone_question)
        reply = note + result.answer
        reply += "".join(f"\n\n_(removed {e['cited']}: {e['reason']})_" for e in result.citation_errors)
    except PlraError as err:
        reply = f"⚠️ {err}"
    return [*history, {"role": "user", "content": question}, {"role": "assistant", "content": reply}], ""


# ------------------------------------------------------------------------------------------ Write


def write_action(action: str, topic: str, style: str, lang: str, use_model: bool, use_local: bool = False,
                 temperature: float = 0.2) -> tuple[str, str | None]:  # fmt: skip
    """Run one Write action; returns (Markdown to show, path of the BibTeX file to download)."""

    def draft(llm) -> tuple[str, str]:
        from plra.research.write import outline, outline_markdown, related_work

        if action == "Outline":
            result = outline(assistant(), topic, lang)
            return outline_markdown(result), result["bibtex"]
        if action == "Ideas":
            from plra.knowledge.cite import bibtex
            from plra.research.ideas import ideas, ideas_markdown

            items = ideas(assistant(), topic, 5, lang, llm)
            cited = dict.fromkeys(pid for idea in items for pid in idea["cited"])
            return ideas_markdown(items, lang), bibtex([assistant().knowledge.get(pid) for pid in cited])
        result = related_work(assistant(), topic, None, style, lang, llm)
        return (result["text"] if style == "plain" else f"```latex\n{result['text']}```"), result["bibtex"]

    seconds = app_settings().request_timeout_s
    try:
        llm = client_for(use_local, temperature, 512) if use_model and action != "Outline" else None
        if llm is None:
            text, bib = draft(None)
        else:
            try:
                text, bib = with_model(lambda: draft(llm), seconds)
            except (ModelBusy, LLMTimeout) as err:
                text, bib = draft(None)
                text = f"{fallback_note(err, seconds)}\n\n{text}"
    except PlraError as err:
        return f"⚠️ {err}", None
    if not bib:
        return text, None
    path = Path(tempfile.mkdtemp(prefix="plra-write-")) / "references.bib"
    path.write_text(bib, encoding="utf-8")
    return text, str(path)


# ------------------------------------------------------------------------------------------ Papers and Learn


PAPER_HEADERS = ["arXiv id", "title", "year", "topics"]


def plain(text: str) -> str:
    """Text from outside the curated set, shown as text: no HTML, no Markdown links or images."""
    return re.sub(r"([\\`*_{}\[\]()#+!|~>-])", r"\\\1", html.escape(text or ""))


PAGE_SIZE = 25  # a page of the Papers table: Gradio's table renders every row it holds, slowly on a small CPU
SORTS = {
    "newest first": lambda p: (-p.year, p.arxiv_id),
    "oldest first": lambda p: (p.year, p.arxiv_id),
    "title": lambda p: p.title.lower(),
    "arXiv id": lambda p: p.arxiv_id,
}


def paper_rows(
    topic: str = "all", year_from: float = 0, sort: str = "newest first", page: float = 1
) -> tuple[list[list[Any]], str]:
    """One page of the whole curated set (then incoming papers), filtered by topic and year, in the chosen order;
    with a line saying which part of how many it shows."""
    knowledge = assistant().knowledge
    papers = [*knowledge.papers.values(), *knowledge.incoming.values()]
    papers = [p for p in papers if (topic in ("", "all", None) or topic in getattr(p, "topics", []))
              and p.year >= (year_from or 0)]  # fmt: skip
    papers.sort(key=SORTS.get(sort, SORTS["newest first"]))
    pages = max(1, -(-len(papers) // PAGE_SIZE))
    page = min(max(1, int(page or 1)), pages)
    shown = papers[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    rows = [[p.arxiv_id, p.title, p.year, ", ".join(getattr(p, "topics", [])) or "not yet reviewed"] for p in shown]
    first = (page - 1) * PAGE_SIZE + 1 if shown else 0
    return rows, f"Papers {first}–{first + len(shown) - 1 if shown else 0} of {len(papers)} (page {page} of {pages})"


def search_papers(
    query: str, topic: str, year_from: float, sort: str = "newest first", page: float = 1
) -> tuple[list[list[Any]], str]:
    if not (query or "").strip():
        return paper_rows(topic, year_from, sort, page)
    hits = assistant().index.search(
        query, k=20, year_from=int(year_from), topic=None if topic in ("", "all") else topic
    )
    return [[h.arxiv_id, h.title, h.year, h.snippet] for h in hits], f"{len(hits)} best matches for {query.strip()!r}"


def paper_markdown(arxiv_id: str) -> str:
    paper = assistant().knowledge.get((arxiv_id or "").strip())
    if paper is None:
        return "_Pick a paper in the table._"
    if not paper.curated:
        note = f"{NOT_REVIEWED['en'].capitalize()} ({NOT_REVIEWED['zh']}): fetched from arXiv, uncurated."
        return f"### {plain(paper.title)} ({paper.year})\n_{note}_\n\n{plain(paper.source_abstract)}"
    findings = "\n".join(f"- {f}" for f in paper.key_findings)
    labelled = (("Methods", paper.methods), ("Data", paper.datasets), ("Metrics", paper.metrics))
    details = [f"**{label}**: {', '.join(values)}" for label, values in labelled if values]
    return (
        f"### [{paper.title}]({paper.url}) ({paper.year})\n{', '.join(paper.authors)}"
        f"{' — ' + paper.venue if paper.venue else ''}\n\n_Topics: {', '.join(paper.topics)}_\n\n"
        f"{paper.summary_en}\n\n{paper.summary_zh}\n\n**Key findings**\n{findings}\n\n" + "\n\n".join(details)
    )


def selected_paper(event: gr.SelectData) -> str:
    """The card of the row clicked in the Papers table (its first cell is the arXiv id)."""
    row = getattr(event, "row_value", None) or []
    return paper_markdown(str(row[0]) if row else "")


def whats_new(since: str) -> str:
    import datetime

    from plra.knowledge.digest import digest_markdown

    try:
        day = datetime.date.fromisoformat((since or "").strip())
    except ValueError:
        return "_Give a date like 2026-06-01._"
    return digest_markdown(assistant().knowledge, day)


def glossary_markdown(query: str) -> str:
    wanted = (query or "").lower().strip()
    terms = [
        t
        for t in assistant().knowledge.glossary
        if not wanted or wanted in t.term.lower() or any(wanted in a.lower() for a in [*t.aliases, *t.names_zh])
    ]
    return (
        "\n\n".join(
            f"**{t.term}**{' (' + ', '.join([*t.aliases, *t.names_zh]) + ')' if t.aliases or t.names_zh else ''}: "
            f"{t.en}\n\n{t.zh}"
            for t in terms
        )
        or "_No such term._"
    )


def path_markdown(path_id: str) -> str:
    knowledge = assistant().knowledge
    for path in knowledge.paths:
        if path.id == path_id:
            steps = [
                f"{i}. [{knowledge.papers[s.arxiv_id].title}]({knowledge.papers[s.arxiv_id].url}) "
                f"({knowledge.papers[s.arxiv_id].year}): {s.why_en}\n   {s.why_zh}"
                for i, s in enumerate(path.steps, 1)
            ]
            return f"### {path.title_en} / {path.title_zh}\n_{path.audience_en}_ {path.audience_zh}\n\n" + "\n".join(
                steps
            )
    return ""


def all_paths_markdown() -> str:
    return "\n\n".join(path_markdown(p.id) for p in assistant().knowledge.paths)


def overview_markdown(topic: str, lang: str) -> str:
    """A topic's overview with its section headings, then the topic's curated papers, newest first."""
    from plra.data.synthesis import overview_document

    knowledge = assistant().knowledge
    if topic not in knowledge.topics:
        return "_Pick a topic._"
    text = overview_document(knowledge, topic, lang) if topic in knowledge.overviews else "_No overview yet._"
    text = re.sub(r"^# ", "### ", re.sub(r"^## ", "#### ", text, flags=re.M), flags=re.M)
    papers = sorted((p for p in knowledge.papers.values() if topic in p.topics), key=lambda p: (-p.year, p.arxiv_id))
    heading = "论文" if lang == "zh" else "Papers"
    rows = [f"- [{p.title}]({p.url}) ({p.year}) arXiv:{p.arxiv_id}" for p in papers]
    return f"{text}\n\n#### {heading} ({len(papers)})\n" + "\n".join(rows)


@functools.cache
def field_map_png() -> str:
    from plra.knowledge.field_map import render

    return str(render(assistant().knowledge, Path(tempfile.mkdtemp(prefix="plra-map-")) / "field_map.png"))


def header_markdown() -> str:
    knowledge = assistant().knowledge
    return (
        "# PLRA — Personalized-LLM Research Assistant\nAsk about personalized LLMs in English or 中文; answers cite "
        f"the papers they rest on. Knowledge base: {len(knowledge.papers)} curated papers, **reviewed through "
        f"{knowledge.reviewed_through}** (newer work: `plra kb update`, or the Agent mode's arXiv search)."
    )


def build_ui():
    knowledge = assistant().knowledge
    with gr.Blocks(title="PLRA — Personalized-LLM Research Assistant") as demo:
        gr.Markdown(header_markdown(), elem_id="header")
        with gr.Tab("Chat"):
            mode = gr.Radio(
                ["Ask", "Agent", "Papers only"],
                value="Ask",
                label="Mode",
                elem_id="mode",
                info="Papers only: instant answers composed from the knowledge base, cited, no model",
            )
            chatbot = gr.Chatbot(label="PLRA", height=420, elem_id="chatbot")
            box = gr.Textbox(placeholder="Ask a question…", show_label=False, submit_btn="Send", elem_id="question")
            sources = gr.Markdown(elem_id="sources")
            gr.Examples(EXAMPLES, inputs=box)
        with gr.Tab("Read"):
            gr.Markdown(f"Upload a paper (PDF, up to {MAX_PDF_MB:g} MB) or give an arXiv id, press Read, then ask "
                        "about it: answers cite the pages they come from as (p. N).")  # fmt: skip
            with gr.Row():
                upload = gr.File(label="PDF", file_types=[".pdf"], type="filepath", elem_id="read-file")
                arxiv_id = gr.Textbox(label="or an arXiv id", placeholder="2304.11406", elem_id="read-arxiv")
            read_button = gr.Button("Read", variant="primary", elem_id="read-open")
            card = gr.Markdown(elem_id="read-card")
            source = gr.State(None)
            answer_mode = gr.Radio(["Model", "Passages only"], value="Model", label="Answers", elem_id="read-mode")
            read_chat = gr.Chatbot(label="About this paper", height=320, elem_id="read-chat")
            read_box = gr.Textbox(placeholder="Ask about the paper…", show_label=False, submit_btn="Ask",
                                  elem_id="read-question")  # fmt: skip
        with gr.Tab("Write"):
            action = gr.Radio(WRITE_ACTIONS, value="Related work", label="Action", elem_id="write-action")
            write_topic = gr.Textbox(label="Topic", placeholder="memory for personalized assistants",
                                     elem_id="write-topic")  # fmt: skip
            with gr.Row():
                style = gr.Dropdown(["plain", "acl", "neurips"], value="plain", label="Style (related work)")
                write_lang = gr.Radio(["en", "zh"], value="en", label="Language")
                use_model = gr.Checkbox(False, label="Draft with the model (otherwise from the knowledge base)")
            write_button = gr.Button("Write", variant="primary", elem_id="write-go")
            write_output = gr.Markdown(elem_id="write-output")
            bib_file = gr.File(label="BibTeX of the cited papers", elem_id="write-bib")
        with gr.Tab("Papers"):
            with gr.Row():
                query = gr.Textbox(label="Search", elem_id="paper-query")
                topic = gr.Dropdown(["all", *knowledge.topics], value="all", label="Topic", elem_id="paper-topic")
                year = gr.Slider(2018, 2026, value=2018, step=1, label="From year", elem_id="paper-year")
            with gr.Row():
                sort = gr.Dropdown(list(SORTS), value="newest first", label="Order", elem_id="paper-sort")
                page_number = gr.Number(1, minimum=1, precision=0, label="Page", elem_id="paper-page")
            first_rows, first_status = paper_rows()
            status = gr.Markdown(first_status, elem_id="paper-status")
            table = gr.Dataframe(first_rows, headers=PAPER_HEADERS, interactive=False, elem_id="papers",
                                 max_height=420)  # fmt: skip
            detail = gr.Markdown("_Click a paper to see its card._", elem_id="paper-card")
            with gr.Accordion("What's new", open=False):
                since = gr.Textbox(label="Added since (YYYY-MM-DD)", value="2026-01-01", elem_id="digest-since")
                digest_view = gr.Markdown(elem_id="digest")
            listing = [query, topic, year, sort, page_number]
            for event in (query.submit, topic.change, year.release, sort.change, page_number.submit):
                event(search_papers, listing, [table, status])
            table.select(selected_paper, None, detail)
            since.submit(whats_new, since, digest_view)
        with gr.Tab("Learn"):
            first = next((t for t in knowledge.topics if t in knowledge.overviews), next(iter(knowledge.topics)))
            with gr.Row():
                learn_topic = gr.Dropdown(list(knowledge.topics), value=first, label="Topic", elem_id="learn-topic")
                learn_lang = gr.Radio(["en", "zh"], value="en", label="Language", elem_id="learn-lang")
            overview = gr.Markdown(overview_markdown(first, "en"), elem_id="overview")
            gr.Image(field_map_png(), label="Field map: curated papers per topic per year", elem_id="field-map")
            with gr.Accordion("Glossary", open=False):
                term = gr.Textbox(label="Filter terms", elem_id="glossary-filter")
                terms = gr.Markdown(glossary_markdown(""), elem_id="glossary")
            with gr.Accordion("Reading paths", open=True):
                gr.Markdown(all_paths_markdown(), elem_id="reading-paths")
            learn_topic.change(overview_markdown, [learn_topic, learn_lang], overview)
            learn_lang.change(overview_markdown, [learn_topic, learn_lang], overview)
            term.change(glossary_markdown, term, terms)
        with gr.Tab("Settings"):
            configured = server_endpoint()
            gr.Markdown(f"Model server: `{configured}` (the app's PLRA_ENDPOINT)" if configured else
                        "No model server is configured (PLRA_ENDPOINT): Ask answers at once, composed from the "
                        "knowledge base with checked citations.")  # fmt: skip
            local_label = ("With no server, let the in-process tiny model write (minutes on a CPU; its answer is set "
                           "aside when it cites nothing)")  # fmt: skip
            use_local = gr.Checkbox(False, label=local_label, elem_id="use-local")
            temperature = gr.Slider(0.0, 1.0, value=0.2, step=0.05, label="Temperature")
        chat_inputs = [box, chatbot, mode, use_local, temperature]
        box.submit(respond, chat_inputs, [chatbot, box, sources], api_name="respond")
        read_button.click(open_paper, [upload, arxiv_id], [card, source, read_chat])
        read_box.submit(ask_paper, [read_box, read_chat, source, answer_mode, use_local, temperature],
                        [read_chat, read_box])  # fmt: skip
        write_button.click(write_action, [action, write_topic, style, write_lang, use_model, use_local, temperature],
                           [write_output, bib_file])  # fmt: skip
    # Requests queue; several run at once so one long answer does not block everyone (and none runs past its
    # deadline), and a full queue says so in words.
    settings = app_settings()
    demo.queue(default_concurrency_limit=settings.concurrency, max_size=settings.queue_max)
    refuse_when_full(demo, settings.queue_max)
    return demo


def busy_message(waiting: int) -> str:
    return f"The assistant is busy ({waiting} request{'' if waiting == 1 else 's'} waiting); try again in a minute."


def refuse_when_full(demo: gr.Blocks, max_size: int) -> None:
    """Refuse a request the full queue cannot hold with HTTP 429 and busy_message. Gradio's own refusal (6.17,
    queueing.Queue.push) is a 503 whose detail its page drops for a fixed "This application is currently busy";
    the page shows the detail of any other status as it is, and API clients read it in the response's body."""
    from fastapi import HTTPException

    events = demo._queue
    push = events.push

    async def push_or_refuse(body: Any, request: Any, username: str | None) -> Any:
        waiting = len(events)
        if waiting >= max_size:
            raise HTTPException(status_code=429, detail=busy_message(waiting), headers={"Retry-After": "60"})
        return await push(body=body, request=request, username=username)

    events.push = push_or_refuse


HOSTING_VARIABLES = ("SPACE_ID", "OPENXLAB_APP_ID", "PLRA_APP_PUBLIC")  # a hosting platform: serve everyone


def server_name(environ: dict[str, str] | None = None) -> str:
    """127.0.0.1 (this machine only) unless GRADIO_SERVER_NAME says otherwise or a hosting platform runs the app."""
    environ = dict(os.environ if environ is None else environ)
    if environ.get("GRADIO_SERVER_NAME"):
        return environ["GRADIO_SERVER_NAME"]
    return "0.0.0.0" if any(environ.get(name) for name in HOSTING_VARIABLES) else "127.0.0.1"


def auth_pairs(environ: dict[str, str] | None = None) -> list[tuple[str, str]] | None:
    """Logins from PLRA_APP_AUTH ("user:pass,user2:pass2") or the file PLRA_APP_AUTH_FILE (a user:pass a line)."""
    environ = dict(os.environ if environ is None else environ)
    text = environ.get("PLRA_APP_AUTH", "")
    if environ.get("PLRA_APP_AUTH_FILE"):
        path = Path(environ["PLRA_APP_AUTH_FILE"])
        try:
            text = path.read_text(encoding="utf-8").replace("\n", ",")
        except OSError as err:
            raise PlraError(f"PLRA_APP_AUTH_FILE={path}: {err.strerror or err}") from None
    pairs = []
    for index, item in enumerate(p.strip() for p in text.split(",")):
        if not item:
            continue
        user, sep, password = item.partition(":")
        if not sep or not user or not password:
            raise PlraError(f"PLRA_APP_AUTH entry {index + 1} must be user:password")
        pairs.append((user, password))
    return pairs or None


def main() -> None:
    port = int(os.environ.get("GRADIO_SERVER_PORT") or os.environ.get("PORT") or 7860)
    build_ui().launch(server_name=server_name(), server_port=port, auth=auth_pairs(),
                      max_file_size=f"{MAX_PDF_MB:g}mb")  # fmt: skip
