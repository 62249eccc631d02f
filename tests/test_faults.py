"""Hostile servers and a bound on time for each: every outside call ends with a clear, truthful message within
its deadline as a whole, and nothing is written half."""

from __future__ import annotations

import time

import pytest

from plra.errors import PlraError
from plra.llm import LLMClient, LLMTimeout
from tests.conftest import run_plra
from tests.hostile_fixture import HostileServer

QUESTION = "What did LaMP find?"
MESSAGES = [{"role": "user", "content": QUESTION}]


def _client(url: str) -> LLMClient:
    return LLMClient.from_url(url, model="hostile", timeout_s=2.0, max_tokens=20)


def test_a_server_that_never_answers_times_out_once_and_says_after_how_long():
    with HostileServer("silent") as server:
        start = time.monotonic()
        with pytest.raises(LLMTimeout, match=r"within 2 s"):
            _client(server.url).chat(MESSAGES)
        assert time.monotonic() - start < 5  # no silent retries tripling the wait


def test_an_endless_stream_ends_at_the_token_budget():
    with HostileServer("endless_stream") as server:
        start = time.monotonic()
        pieces = list(_client(server.url).stream(MESSAGES))
        assert len(pieces) <= 2 * 20 and time.monotonic() - start < 10


def test_a_stream_still_going_at_the_deadline_is_cut_with_a_message():
    with HostileServer("endless_stream") as server:
        client = LLMClient.from_url(server.url, model="hostile", timeout_s=1.0, max_tokens=100_000)
        start = time.monotonic()
        with pytest.raises(LLMTimeout, match="still going at the call's deadline"):
            list(client.stream(MESSAGES))
        assert time.monotonic() - start < 8


def test_a_trickling_server_cannot_keep_a_chat_call_alive():
    with HostileServer("trickle") as server:
        start = time.monotonic()
        with pytest.raises(PlraError):
            _client(server.url).chat(MESSAGES)
        assert time.monotonic() - start < 6


def test_garbage_and_errors_from_a_model_server_are_one_line_each():
    for mode, expected in (("garbage", "not with an OpenAI chat completion"), ("error500", "answered 500")):
        with HostileServer(mode) as server, pytest.raises(PlraError, match=expected):
            _client(server.url).chat(MESSAGES)


def test_plra_ask_against_a_silent_server_fails_fast_and_clearly(isolated_config):
    with HostileServer("silent") as server:
        start = time.monotonic()
        env = {"PLRA_CLIENT_TIMEOUT_S": "2", "PLRA_CLIENT_SECONDS_PER_TOKEN": "0"}
        result = run_plra("ask", QUESTION, "--endpoint", server.url, env=env)
        elapsed = time.monotonic() - start
    assert result.returncode != 0 and "did not" in result.stderr and elapsed < 60, (elapsed, result.stderr[-300:])
    assert len(result.stderr.strip().splitlines()) == 1  # a message, not a traceback


@pytest.mark.parametrize("mode", ["trickle", "garbage"])
def test_kb_update_against_a_trickling_or_garbage_feed_fails_within_its_deadline(kb_copy, mode):
    with HostileServer(mode) as server:
        env = {"ARXIV_API_URL": f"{server.url}/api/query", "PLRA_ARXIV_DELAY_S": "0", "PLRA_ARXIV_TIMEOUT_S": "2",
               "PLRA_ARXIV_DEADLINE_S": "4", "PLRA_ARXIV_RETRIES": "1"}  # fmt: skip
        start = time.monotonic()
        result = run_plra("kb", "update", "--query", "all:personalization", env=env)
        elapsed = time.monotonic() - start
    assert result.returncode != 0 and elapsed < 30, (elapsed, result.stdout, result.stderr[-300:])
    expected = "deadline" if mode == "trickle" else "not with an Atom feed"
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (kb_copy / "incoming").exists()  # nothing written


def test_read_of_an_arxiv_id_from_a_trickling_server_fails_within_its_deadline(kb_copy):
    with HostileServer("trickle") as server:
        env = {"ARXIV_API_URL": f"{server.url}/api/query", "PLRA_ARXIV_TIMEOUT_S": "2", "PLRA_ARXIV_DEADLINE_S": "4",
               "PLRA_ARXIV_RETRIES": "0"}  # fmt: skip
        start = time.monotonic()
        result = run_plra("read", "2999.00001", "--no-llm", env=env)
        elapsed = time.monotonic() - start
    assert result.returncode != 0 and elapsed < 30 and "cannot download 2999.00001" in result.stderr, (
        elapsed,
        result.stderr[-300:],
    )
