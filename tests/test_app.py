"""The real app in a real browser (Debian chromium driven by Playwright), against the real knowledge base."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from plra.paths import REPO_ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def app_url():
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is missing: `make setup` installs it as root, else run `sudo apt-get install chromium`")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PLRA_APP_MAX_TOKENS": "24",
        "PLRA_ENDPOINT": "",
    }
    proc = subprocess.Popen(
        [sys.executable, "app.py"], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"app.py exited: {proc.stdout.read()[-2000:]}")
            time.sleep(1)
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def page(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        tab = browser.new_page()
        tab.goto(app_url)  # not "networkidle": since the Read and Write tabs it never comes; wait for the chat box
        tab.wait_for_selector("#question textarea", timeout=60_000)
        yield tab
        browser.close()


@pytest.mark.slow
def test_chat_answers_with_linked_sources(page):
    page.fill("#question textarea", "Which benchmarks evaluate personalization of LLMs with user profiles?")
    page.keyboard.press("Enter")
    page.wait_for_selector("#sources a[href^='https://arxiv.org/abs/']", timeout=240_000)
    links = page.locator("#sources a[href^='https://arxiv.org/abs/']")
    assert links.count() >= 1
    assert page.locator("#chatbot").inner_text().strip()


@pytest.mark.slow
def test_out_of_field_question_is_refused_in_the_browser(page):
    page.fill("#question textarea", "What is the best way to grill salmon?")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#sources').innerText.includes('outside the field')", timeout=60_000)
    assert "personalized large language models" in page.locator("#chatbot").inner_text()


@pytest.mark.slow
def test_a_follow_up_in_the_chat_cites_the_paper_of_the_earlier_turn(page):
    memgpt = "a[href='https://arxiv.org/abs/2310.08560']"
    page.locator("#mode label").filter(has_text="Papers only").first.click()  # a composed answer: known content
    page.fill("#question textarea", "What did MemGPT find?")
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#sources {memgpt}", timeout=240_000)
    page.fill("#question textarea", "Which datasets did they evaluate it on?")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#sources').innerText.includes('Understood as')", timeout=240_000)
    sources = page.locator("#sources")
    assert "MemGPT [arXiv:2310.08560]" in sources.inner_text()  # the standalone question the answer used
    assert sources.locator(memgpt).count() >= 1
    assert "Multi-Session Chat" in page.locator("#chatbot").inner_text()  # MemGPT's own data, from its entry


@pytest.mark.slow
def test_papers_tab_searches_the_knowledge_base(page):
    page.get_by_role("tab", name="Papers").click()
    page.fill("#paper-query textarea", "role-play character agents")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#papers').innerText.includes('20')", timeout=60_000)
    assert "role" in page.locator("#papers").inner_text().lower()


@pytest.mark.slow
def test_papers_tab_shows_the_field_on_open_and_a_card_on_click(page):
    from plra.knowledge import kb

    knowledge = kb.load()
    assert f"reviewed through {knowledge.reviewed_through}" in page.locator("#header").inner_text()
    page.get_by_role("tab", name="Papers").click()
    page.fill("#paper-query textarea", "")  # an earlier test may have searched: an empty query lists the field
    page.keyboard.press("Enter")
    page.wait_for_function(
        f"document.querySelector('#paper-status').innerText.includes('of {len(knowledge.papers)}')", timeout=60_000
    )
    newest = min(knowledge.papers.values(), key=lambda p: (-p.year, p.arxiv_id))
    cell = page.locator("#papers .cell-wrap:visible").filter(has_text=newest.arxiv_id).first
    cell.wait_for(timeout=60_000)  # the whole knowledge base, newest first, before any query
    cell.click()
    page.wait_for_function("document.querySelector('#paper-card').innerText.includes('Key findings')", timeout=60_000)
    assert newest.title in page.locator("#paper-card").inner_text()
    oldest = min(knowledge.papers.values(), key=lambda p: (p.year, p.arxiv_id))
    page.locator("#paper-sort input").click()
    page.get_by_role("option", name="oldest first").click()
    page.locator("#papers .cell-wrap:visible").filter(has_text=oldest.arxiv_id).first.wait_for(timeout=60_000)


@pytest.mark.slow
def test_learn_tab_opens_on_an_overview_a_field_map_and_the_reading_paths(page):
    from plra.knowledge import kb

    knowledge = kb.load()
    page.get_by_role("tab", name="Learn").click()
    overview = page.locator("#overview")
    overview.wait_for(timeout=30_000)
    first = next(t for t in knowledge.topics if t in knowledge.overviews)
    assert "Families of approaches" in overview.inner_text() and "Open problems" in overview.inner_text()
    assert knowledge.overviews[first].central[0] in overview.inner_text()
    assert page.locator("#field-map img").count() == 1
    paths = page.locator("#reading-paths").inner_text()
    for path in knowledge.paths:  # every path, every step, in full
        assert path.title_en in paths
        assert knowledge.papers[path.steps[-1].arxiv_id].title in paths
    page.locator("#learn-topic input").fill("memory")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "document.querySelector('#overview').innerText.includes('Memory and long-term dialogue')", timeout=30_000
    )


def test_the_papers_table_pages_filters_and_orders_the_whole_knowledge_base():
    from plra import app

    knowledge = app.assistant().knowledge
    rows, status = app.paper_rows()
    assert len(rows) == app.PAGE_SIZE and status.startswith(f"Papers 1–{app.PAGE_SIZE} of {len(knowledge.papers)}")
    assert [r[2] for r in rows] == sorted((r[2] for r in rows), reverse=True)
    last_page = -(-len(knowledge.papers) // app.PAGE_SIZE)
    rows, status = app.paper_rows(page=999)  # past the end: the last page
    assert f"(page {last_page} of {last_page})" in status and rows
    memory = [p for p in knowledge.papers.values() if "memory" in p.topics and p.year >= 2026]
    rows, status = app.paper_rows("memory", 2026, "arXiv id")
    assert [r[0] for r in rows] == sorted(p.arxiv_id for p in memory)[: app.PAGE_SIZE]
    assert f"of {len(memory)} " in status


def test_the_app_is_closed_unless_configured_open():
    from plra import app
    from plra.errors import PlraError

    assert app.server_name({}) == "127.0.0.1"
    assert app.server_name({"GRADIO_SERVER_NAME": "0.0.0.0"}) == "0.0.0.0"
    assert app.server_name({"SPACE_ID": "someone/plra"}) == "0.0.0.0"  # a hosting platform serves everyone
    assert app.auth_pairs({}) is None
    assert app.auth_pairs({"PLRA_APP_AUTH": "ana:s3cret, bo:pw"}) == [("ana", "s3cret"), ("bo", "pw")]
    with pytest.raises(PlraError, match="entry 2 must be user:password"):
        app.auth_pairs({"PLRA_APP_AUTH": "ana:s3cret,bo"})


def test_with_no_server_ask_answers_at_once_and_no_request_names_an_endpoint(monkeypatch):
    from plra import app

    monkeypatch.delenv("PLRA_ENDPOINT", raising=False)
    monkeypatch.setattr(app, "server_endpoint", lambda: "")
    monkeypatch.setattr(app, "local_model", lambda: pytest.fail("the tiny model is opt-in"))
    *_, (history, _, sources) = app.respond("How do LaMP and LongLaMP differ?", [], "Ask")
    assert "[arXiv:" not in history[-1]["content"] and "Sources:" in history[-1]["content"]
    assert sources.startswith("_Composed from the knowledge base; citations checked._")
    *_, (history, _, _) = app.respond("What is LaMP?", [], "Agent")  # the agent's server is the app's setting
    assert "PLRA_ENDPOINT" in history[-1]["content"]


def test_text_from_outside_the_curated_set_is_shown_as_text():
    from plra import app

    shown = app.plain('<img src="https://example.org/x.png"> [click](https://example.org) ![i](u)')
    assert "<img" not in shown and "](" not in shown
    assert "&lt;img" in shown and "\\[click\\]" in shown


@pytest.fixture
def upload_dir(tmp_path, monkeypatch):
    folder = tmp_path / "gradio-uploads"
    folder.mkdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(folder))
    return folder


def test_uploads_must_be_small_pdfs_inside_the_upload_folder(upload_dir, tmp_path, monkeypatch):
    from plra import app
    from plra.errors import PlraError
    from tests.pdf_fixture import write_paper_pdf

    inside = write_paper_pdf(upload_dir / "abc123" / "paper.pdf")
    assert app.checked_upload(str(inside)) == inside.resolve()
    outside = write_paper_pdf(tmp_path / "elsewhere" / "paper.pdf")
    refused = {
        "/etc/passwd": "only a file uploaded through this page",
        str(outside): "only a file uploaded through this page",
        str(upload_dir / "abc123" / ".." / ".." / "elsewhere" / "paper.pdf"): "only a file uploaded through this page",
    }
    fake = upload_dir / "x" / "notes.pdf"
    fake.parent.mkdir()
    fake.write_text("hello")
    refused[str(fake)] = "the file is not a PDF"
    text = upload_dir / "x" / "notes.txt"
    text.write_text("%PDF-")
    refused[str(text)] = "only PDF files"
    for path, reason in refused.items():
        with pytest.raises(PlraError, match=reason):
            app.checked_upload(path)
    monkeypatch.setattr(app, "MAX_PDF_MB", 0.001)
    with pytest.raises(PlraError, match=r"larger than 0\.001 MB"):
        app.checked_upload(str(inside))
    card, source, _ = app.open_paper("/etc/passwd", "")
    assert card.startswith("⚠️") and source is None


@pytest.mark.slow
def test_read_tab_uploads_a_pdf_and_answers_with_pages(page, tmp_path):
    from tests.pdf_fixture import write_paper_pdf

    page.get_by_role("tab", name="Read").click()
    page.set_input_files("#read-file input[type=file]", str(write_paper_pdf(tmp_path / "memorylane.pdf")))
    page.wait_for_function("document.querySelector('#read-file').innerText.includes('memorylane')", timeout=60_000)
    page.click("#read-open")
    page.wait_for_function("document.querySelector('#read-card').innerText.includes('87.5%')", timeout=60_000)
    assert "Set aside" in page.locator("#read-card").inner_text()
    page.get_by_label("Passages only").check()
    page.fill("#read-question textarea", "What accuracy does MemoryLane reach on LaMP-2?")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#read-chat').innerText.includes('(p. 3)')", timeout=60_000)


@pytest.mark.slow
def test_write_tab_drafts_related_work_with_a_bibtex_download(page):
    page.get_by_role("tab", name="Write").click()
    page.fill("#write-topic textarea", "memory for long-term personalized dialogue")
    page.click("#write-go")
    page.wait_for_function("document.querySelector('#write-output').innerText.includes('References')", timeout=60_000)
    link = page.locator("#write-bib a[href*='references.bib']")
    link.wait_for(timeout=30_000)
    with page.expect_download() as download:
        link.click()
    assert "@" in Path(download.value.path()).read_text()


# ------------------------------------------------------------------------------------------ load: deadlines, queue

QUESTION = "What did LaMP find?"


def text_of(message: dict) -> str:
    """A chat message's text (Gradio hands a message back as a list of parts)."""
    content = message["content"]
    return content if isinstance(content, str) else " ".join(part.get("text", "") for part in content)


def test_the_app_load_settings_come_from_the_environment():
    from plra import app
    from plra.errors import PlraError

    assert app.app_settings({}) == app.AppSettings(request_timeout_s=60.0, concurrency=4, queue_max=64)
    assert app.app_settings({"PLRA_APP_REQUEST_TIMEOUT_S": "2.5", "PLRA_APP_CONCURRENCY": "3",
                             "PLRA_APP_QUEUE_MAX": "5"}) == app.AppSettings(2.5, 3, 5)  # fmt: skip
    for variable, value in (("PLRA_APP_CONCURRENCY", "many"), ("PLRA_APP_QUEUE_MAX", "0"),
                            ("PLRA_APP_REQUEST_TIMEOUT_S", "-1")):  # fmt: skip
        with pytest.raises(PlraError, match=f"^{variable}="):
            app.app_settings({variable: value})


@pytest.fixture
def silent_server(monkeypatch, isolated_config):
    """The app's model server accepts and never answers; each request's deadline is 2 s."""
    from plra import app
    from tests.hostile_fixture import HostileServer

    with HostileServer("silent") as server:
        monkeypatch.setenv("PLRA_ENDPOINT", server.url)
        monkeypatch.setenv("PLRA_APP_REQUEST_TIMEOUT_S", "2")
        monkeypatch.setattr(app, "server_endpoint", lambda: server.url)
        yield server


def test_a_model_that_never_answers_gives_the_composed_answer_at_the_deadline(silent_server):
    from plra import app

    start = time.monotonic()
    *_, (history, _, sources) = app.respond(QUESTION, [], "Ask")
    assert time.monotonic() - start < 2 + 3  # the deadline, then the composed answer
    answer = history[-1]["content"]
    assert answer.startswith("_The model did not answer within 2 s") and "[1]" in answer and "Sources:" in answer
    assert sources.startswith("_Composed from the knowledge base; citations checked._")
    start = time.monotonic()
    text, bib = app.write_action("Related work", "memory for personalized dialogue", "plain", "en", True)
    assert time.monotonic() - start < 2 + 3 and text.startswith("_The model did not answer within 2 s") and bib


@pytest.fixture
def launch_app(monkeypatch):
    """Start the app in this process on a free loopback port with the given PLRA_APP_* settings; its URL."""
    from plra import app
    from tests.conftest import free_port

    demos = []

    def launch(**variables: str) -> tuple[str, Any]:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        demo = app.build_ui()
        port = free_port()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        demos.append(demo)
        return f"http://127.0.0.1:{port}/", demo

    yield launch
    for demo in demos:
        demo.close()


@pytest.mark.slow
def test_a_hung_model_call_blocks_neither_papers_only_nor_its_own_worker(silent_server, launch_app):
    from gradio_client import Client
    from gradio_client.utils import Status

    url, _ = launch_app(PLRA_APP_CONCURRENCY="2")
    client = Client(url, verbose=False)
    start = time.monotonic()
    asking = client.submit(QUESTION, [], "Ask", False, 0.2, api_name="/respond")
    while asking.status().code != Status.PROCESSING:
        assert time.monotonic() - start < 10
        time.sleep(0.05)
    busy, _, _ = client.predict(QUESTION, [], "Ask", False, 0.2, api_name="/respond")  # the one model slot is taken
    assert text_of(busy[-1]).startswith("_The model is answering 1 other question(s) right now")
    history, _, sources = client.predict(QUESTION, [], "Papers only", False, 0.2, api_name="/respond")
    assert not asking.done() and "arxiv.org" in sources and "Sources:" in text_of(history[-1])
    history, _, _ = asking.result(timeout=10)
    assert time.monotonic() - start < 2 + 4, time.monotonic() - start
    assert text_of(history[-1]).startswith("_The model did not answer within 2 s")


@pytest.mark.slow
def test_a_full_queue_says_the_assistant_is_busy(silent_server, launch_app):
    import httpx
    from gradio_client import Client
    from gradio_client.utils import Status

    url, demo = launch_app(PLRA_APP_CONCURRENCY="1", PLRA_APP_QUEUE_MAX="1", PLRA_APP_REQUEST_TIMEOUT_S="8")
    client = Client(url, verbose=False)
    start = time.monotonic()
    running = client.submit(QUESTION, [], "Ask", False, 0.2, api_name="/respond")  # holds the worker for 8 s
    while running.status().code != Status.PROCESSING:
        assert time.monotonic() - start < 10
        time.sleep(0.05)
    waiting = client.submit(QUESTION, [], "Papers only", False, 0.2, api_name="/respond")
    while len(demo._queue) < 1:  # the server's count: the client hears of its place in the queue only at times
        assert time.monotonic() - start < 6
        time.sleep(0.05)
    with pytest.raises(httpx.HTTPStatusError) as refused:
        client.predict(QUESTION, [], "Papers only", False, 0.2, api_name="/respond")
    assert refused.value.response.status_code == 429  # any status but 503 shows its detail on Gradio's page
    busy = "The assistant is busy (1 request waiting); try again in a minute."
    assert refused.value.response.json()["detail"] == busy
    assert "Sources:" in text_of(waiting.result(timeout=15)[0][-1])  # the waiting request is still answered
    running.result(timeout=15)
