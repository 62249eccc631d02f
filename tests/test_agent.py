import json

import pytest

from plra.assistant import agent
from plra.assistant.answer import Assistant
from plra.settings import load_knowledge, load_profile
from plra.toolchain import serve
from tests.arxiv_fixture import ArxivServer, AtomEntry
from tests.conftest import free_port
from tests.openai_fixture import ScriptedOpenAI


@pytest.fixture(scope="module")
def assistant():
    return Assistant()


def test_lagent_roles_become_turns_a_server_accepts():
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "call"},
        {"role": "environment", "name": "plugin", "content": {"papers": []}},
        {"role": "user", "content": "go on"},
    ]
    plain = agent.to_openai(messages, keep_roles=False)
    assert [m["role"] for m in plain] == ["system", "user", "assistant", "user"]
    assert plain[3]["content"].startswith("[plugin result]\n{") and plain[3]["content"].endswith("go on")
    internlm = agent.to_openai(messages, keep_roles=True)
    assert internlm[3] == {"role": "environment", "content": '{"papers": []}', "name": "plugin"}


def test_tools_through_lagents_executor(assistant):
    import lagent.actions as actions

    retrieved = {}
    executor = actions.ActionExecutor(actions=agent.build_tools(assistant, retrieved))
    assert {"ArxivSearch", "KnowledgeBaseSearch", "PaperDetails", "Glossary"} <= set(executor.actions)
    found = executor("KnowledgeBaseSearch.search", json.dumps({"query": "long-term memory in dialogue", "k": 3}))
    papers = found.result[0]["content"]
    assert found.errmsg is None and "arxiv_id" in papers
    detail = executor("PaperDetails.get", json.dumps({"arxiv_id": "2304.11406"}))
    assert "LaMP" in detail.result[0]["content"]
    missing = executor("PaperDetails.get", json.dumps({"arxiv_id": "0000.00000"}))
    assert "not in the knowledge base" in missing.errmsg  # an observation for the model, not a crash
    term = executor("Glossary.define", json.dumps({"term": "DPO"}))
    assert "Direct Preference Optimization" in term.result[0]["content"]


def test_arxiv_tool_against_a_loopback_feed(assistant, monkeypatch):
    entry = AtomEntry(
        "2503.07018",
        2,
        "Toward Multi-Session Personalized Conversation",
        ["Xintong Li"],
        "2025-03-10",
        "2025-03-20",
        "Fixture text: implicit reasoning across sessions, 中文也可以。",
    )
    retrieved = {}
    with ArxivServer([entry]) as server:
        monkeypatch.setenv("ARXIV_API_URL", server.url)
        monkeypatch.setenv("PLRA_ARXIV_DELAY_S", "0")
        tools = agent.build_tools(Assistant(load_knowledge()), retrieved)
        result = tools[0].search("all:personalized", 2)
    # a question wants the papers that match it best, not the newest that mention a word (kb update's order)
    assert server.requests[0]["sortBy"] == ["relevance"] and server.requests[0]["search_query"] == ["all:personalized"]
    assert result["papers"][0]["arxiv_id"] == "2503.07018" and "中文也可以" in result["papers"][0]["abstract"]
    assert retrieved == {"2503.07018": ("Toward Multi-Session Personalized Conversation", 2025)}
    with ArxivServer([entry], mode="error") as server:
        monkeypatch.setenv("ARXIV_API_URL", server.url)
        monkeypatch.setenv("PLRA_ARXIV_RETRIES", "0")
        tools = agent.build_tools(Assistant(load_knowledge()), {})
        failed = tools[0].search("all:personalized", 2)
    assert "cannot reach the arXiv API" in failed.errmsg


@pytest.mark.slow
def test_agent_answers_through_the_cpu_server_within_its_turns(tiny_model_dir):
    port = free_port()
    state = serve.start(load_profile("tiny"), tiny_model_dir, port, log=lambda _m: None)
    try:
        result = agent.run("Which papers study memory for long-term personalized dialogue?", state["url"], max_turns=1)
        refused = agent.run("How do I bake sourdough bread?", state["url"], max_turns=1)
    finally:
        serve.stop(port)
    assert result["answer"].strip() and not result["refused"] and len(result["steps"]) <= 1
    assert result["fallback"] in (None, "rag")
    assert refused["refused"] and refused["steps"] == []


def plugin_call(name: str, parameters: str) -> str:
    """An InternLM2 plugin call, as the model writes it."""
    call = f'{{"name": "{name}", "parameters": {parameters}}}'
    return f"Let me look that up.<|action_start|><|plugin|>\n{call}<|action_end|>\n"


FEED = [
    AtomEntry(
        "2503.07018",
        1,
        "Toward Multi-Session Personalized Conversation",
        ["Xintong Li"],
        "2025-03-10",
        "2025-03-10",
        "Fixture text about implicit reasoning across sessions.",
    )
]


def test_internlm2_agent_calls_plugins_and_keeps_only_real_citations(monkeypatch):
    replies = [
        plugin_call("KnowledgeBaseSearch.search", '{"query": "long-term conversational memory", "k": 3}'),
        plugin_call("ArxivSearch.search", '{"query": "all:memory", "max_results": 2}'),
        "LoCoMo [arXiv:2402.17753] tests very long conversations; newer work [arXiv:2503.07018] adds implicit "
        "reasoning; [arXiv:2401.99999] does not exist.",
    ]
    with ArxivServer(FEED) as arxiv_server, ScriptedOpenAI(replies) as llm:
        monkeypatch.setenv("ARXIV_API_URL", arxiv_server.url)
        monkeypatch.setenv("PLRA_ARXIV_DELAY_S", "0")
        result = agent.run("Which papers test long-term memory in conversations?", llm.url, max_turns=4)
    assert [s["tool"] for s in result["steps"]] == ["KnowledgeBaseSearch", "ArxivSearch"]
    assert result["fallback"] is None
    assert [c["arxiv_id"] for c in result["citations"]] == ["2402.17753", "2503.07018"]  # arXiv result accepted
    assert [e["cited"] for e in result["citation_errors"]] == ["2401.99999"]
    assert "2401.99999" not in result["answer"]
    observation = llm.requests[1]["messages"][-1]
    assert observation["role"] == "environment" and "arxiv_id" in observation["content"]  # tool output went back


def test_malformed_tool_json_and_arxiv_errors_become_observations(monkeypatch):
    replies = [
        plugin_call("KnowledgeBaseSearch.search", '{"query": oops'),  # not JSON: the agent moves on
        plugin_call("ArxivSearch.search", '{"query": "all:memory"}'),
        "The knowledge base covers it: LoCoMo [arXiv:2402.17753].",
    ]
    with ArxivServer(FEED, mode="error") as arxiv_server, ScriptedOpenAI(replies) as llm:
        monkeypatch.setenv("ARXIV_API_URL", arxiv_server.url)
        monkeypatch.setenv("PLRA_ARXIV_DELAY_S", "0")
        monkeypatch.setenv("PLRA_ARXIV_RETRIES", "0")
        result = agent.run("Which papers test long-term memory in conversations?", llm.url, max_turns=4)
    [arxiv_step] = result["steps"]
    assert arxiv_step["tool"] == "ArxivSearch" and "cannot reach the arXiv API" in arxiv_step["error"]
    assert [c["arxiv_id"] for c in result["citations"]] == ["2402.17753"]


def test_agent_with_no_server_fails_fast_with_one_line():
    import time

    from plra.errors import PlraError

    start = time.monotonic()
    with pytest.raises(PlraError, match="nothing answers at"):
        agent.run("Which papers test long-term memory in conversations?", f"http://127.0.0.1:{free_port()}/v1")
    assert time.monotonic() - start < 5
