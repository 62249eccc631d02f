"""The real app in a real browser (Debian chromium driven by Playwright), against the real knowledge base."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from plra.envs import REPO_ROOT

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
        pytest.fail("Debian chromium is missing: `apt-get install chromium` (.ci/run does it)")
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
        tab.goto(app_url, wait_until="networkidle")
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
def test_papers_tab_searches_the_knowledge_base(page):
    page.get_by_role("tab", name="Papers").click()
    page.fill("#paper-query textarea", "role-play character agents")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#papers').innerText.includes('20')", timeout=60_000)
    assert "role" in page.locator("#papers").inner_text().lower()
