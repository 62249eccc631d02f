"""`plra agent`: a Lagent 0.2.4 agent with arXiv search and knowledge-base tools.

InternLM2 models get `Internlm2Agent` + `Internlm2Protocol`; other models get ReAct. The LLM is reached
through `PlraAPI`, a Lagent model on top of `plra.llm` (timeouts, bounded retries, real SSE streaming),
instead of Lagent's GPTAPI (which retries a refused connection forever and re-encodes tool output).
Tool errors come back to the model as observations; the final answer's citations are checked against
the knowledge base and the arXiv results retrieved during this question.
"""

from __future__ import annotations

import copy
import functools
import json
import warnings
from typing import Any

import typer
import yaml

from plra.errors import PlraError
from plra.knowledge.retrieval import is_chinese
from plra.paths import REPO_ROOT

PROMPTS = REPO_ROOT / "agent" / "prompts.yaml"
PASS_THROUGH_ROLES = ("system", "user", "assistant")


def _lagent():
    # Importing lagent.llms.openai resets warning filters; keep ours.
    with warnings.catch_warnings():
        import lagent.actions as actions
        import lagent.agents as agents
        from lagent.actions.base_action import BaseAction, tool_api
        from lagent.llms.base_api import BaseAPIModel
        from lagent.schema import ActionReturn, ActionStatusCode
    return actions, agents, BaseAction, tool_api, BaseAPIModel, ActionReturn, ActionStatusCode


def to_openai(messages: list[dict[str, Any]], keep_roles: bool) -> list[dict[str, str]]:
    """Lagent's roles (environment, tool, ...) for a server: kept for InternLM2 under LMDeploy, whose chat
    template knows them; otherwise given as user turns that say where they come from."""
    out = []
    for m in messages:
        role, content = m["role"], m["content"] if isinstance(m["content"], str) else json.dumps(m["content"])
        if role in PASS_THROUGH_ROLES or keep_roles:
            out.append(
                {"role": role, "content": content, **({"name": m["name"]} if keep_roles and "name" in m else {})}
            )
        else:
            out.append({"role": "user", "content": f"[{m.get('name') or role} result]\n{content}"})
    merged: list[dict[str, str]] = []
    for m in out:  # servers want alternating turns: join consecutive user messages
        if merged and m["role"] == "user" and merged[-1]["role"] == "user" and "name" not in m:
            merged[-1] = {"role": "user", "content": merged[-1]["content"] + "\n\n" + m["content"]}
        else:
            merged.append(m)
    return merged


@functools.cache
def _tool_classes():
    """The four action classes, defined once per process: Lagent registers every action class by name,
    and its own ArxivSearch holds that name, so ours are registered as Plra* and shown under their names."""
    _, _, BaseAction, tool_api, _, ActionReturn, ActionStatusCode = _lagent()
    from plra.knowledge.arxiv_client import ArxivClient

    class PlraAction(BaseAction):
        def __init__(self, assistant, retrieved: dict[str, tuple[str, int]]) -> None:
            self.assistant = assistant
            self.retrieved = retrieved
            description = copy.deepcopy(self.__tool_description__)
            description["name"] = type(self).__name__.removeprefix("Plra")
            super().__init__(description=description)

    class PlraArxivSearch(PlraAction):
        """Search arXiv for papers (title, authors, date, abstract) when the knowledge base lacks them."""

        @tool_api
        def search(self, query: str, max_results: int = 3) -> dict:
            """Search arXiv, best match first.

            Args:
                query (str): an arXiv query, e.g. all:personalized AND all:alignment
                max_results (int): how many papers, at most 5

            Returns:
                dict: papers with arxiv_id, title, authors, published, abstract
            """
            try:
                # Best match first: a question wants the papers about it, not the week's newest that mention a word.
                client = ArxivClient(self.assistant.settings)
                papers = client.search(query, max_results=min(int(max_results), 5), sort="relevance")
            except PlraError as err:
                return ActionReturn(errmsg=str(err), state=ActionStatusCode.HTTP_ERROR)
            for p in papers:
                self.retrieved[p.arxiv_id] = (p.title, p.year)
            return {
                "papers": [
                    {
                        "arxiv_id": p.arxiv_id,
                        "title": p.title,
                        "authors": p.authors[:4],
                        "published": p.published,
                        "abstract": p.source_abstract[:600],
                    }
                    for p in papers
                ]
            }

    class PlraKnowledgeBaseSearch(PlraAction):
        """Search PLRA's curated knowledge base of personalized-LLM papers (English or Chinese queries)."""

        @tool_api
        def search(self, query: str, k: int = 5) -> dict:
            """Find the knowledge-base papers that best match a query.

            Args:
                query (str): what to look for
                k (int): how many papers

            Returns:
                dict: papers with arxiv_id, title, year, snippet
            """
            hits = self.assistant.index.search(query, k=max(1, min(int(k), 10)))
            return {"papers": [h.model_dump(exclude={"score"}) for h in hits]}

    class PlraPaperDetails(PlraAction):
        """Details of one knowledge-base paper: summary, key findings, methods, datasets, metrics."""

        @tool_api
        def get(self, arxiv_id: str) -> dict:
            """Look up one paper by arXiv id.

            Args:
                arxiv_id (str): e.g. 2304.11406

            Returns:
                dict: the paper's curated entry
            """
            paper = self.assistant.knowledge.get(arxiv_id.removeprefix("arXiv:").strip())
            if paper is None:
                return ActionReturn(errmsg=f"{arxiv_id} is not in the knowledge base", state=ActionStatusCode.API_ERROR)
            keep = (
                "arxiv_id",
                "title",
                "year",
                "venue",
                "summary_en",
                "key_findings",
                "methods",
                "datasets",
                "metrics",
            )
            return {k: v for k, v in paper.model_dump().items() if k in keep}

    class PlraGlossary(PlraAction):
        """Definitions of the field's terms (RLHF, DPO, LoRA, pluralistic alignment, ...) with papers."""

        @tool_api
        def define(self, term: str) -> dict:
            """Define a term of the field.

            Args:
                term (str): the term or its abbreviation

            Returns:
                dict: definitions in English and Chinese and the papers that explain the term
            """
            wanted = term.lower().strip()
            for entry in self.assistant.knowledge.glossary:
                if wanted in (n.lower() for n in (entry.term, *entry.aliases)):
                    return {"term": entry.term, "en": entry.en, "zh": entry.zh, "papers": entry.papers}
            return ActionReturn(errmsg=f"'{term}' is not in the glossary", state=ActionStatusCode.API_ERROR)

    return PlraArxivSearch, PlraKnowledgeBaseSearch, PlraPaperDetails, PlraGlossary


def build_tools(assistant, retrieved: dict[str, tuple[str, int]]) -> list:
    """The four actions, bound to one knowledge base; `retrieved` collects arXiv results of this question."""
    return [cls(assistant, retrieved) for cls in _tool_classes()]


def make_llm(client, keep_roles: bool):
    _, _, _, _, BaseAPIModel, _, _ = _lagent()

    def budget(gen: dict) -> int:
        # Lagent asks for 512 new tokens by default; the client's own budget (the profile's) caps it so
        # a slow CPU server is never asked for more than its timeout allows.
        return min(gen.get("max_new_tokens", 512), client.settings.max_tokens)

    class PlraAPI(BaseAPIModel):
        """A Lagent model on plra.llm: the one client with timeouts, bounded retries and SSE streaming."""

        def __init__(self) -> None:
            super().__init__(model_type="internlm" if keep_roles else "openai", query_per_second=100, retry=0)

        def chat(self, inputs, **gen):
            return client.chat(to_openai(inputs, keep_roles), max_tokens=budget(gen))

        def stream_chat(self, inputs, **gen):
            text = ""
            for piece in client.stream(to_openai(inputs, keep_roles), max_tokens=budget(gen)):
                text += piece
                yield 1, text, None  # (state, text so far, tool info), the shape Lagent's agents expect

    return PlraAPI()


def run(question: str, endpoint: str, max_turns: int = 4, client=None) -> dict[str, Any]:
    """The agent's answer; `client` (a plra.llm.LLMClient) sets timeouts and the token budget."""
    from plra.assistant.answer import Assistant, check_citations, with_sources
    from plra.assistant.compose import degenerate
    from plra.llm import LLMClient

    actions, agents, *_ = _lagent()
    from lagent.schema import AgentStatusCode

    assistant = Assistant()
    lang = "zh" if is_chinese(question) else "en"
    if not assistant.in_field(question):
        result = assistant.ask(question)
        return {"answer": result.answer, "refused": True, "citations": [], "citation_errors": [], "steps": []}
    client = client or LLMClient.from_url(endpoint, max_tokens=256, temperature=0.2)
    keep_roles = "internlm" in client.model.lower()
    prompts = yaml.safe_load(PROMPTS.read_text(encoding="utf-8"))
    retrieved: dict[str, tuple[str, int]] = {}
    tools = build_tools(assistant, retrieved)
    executor = actions.ActionExecutor(actions=tools)
    llm = make_llm(client, keep_roles)
    tool_names = ", ".join(t.name for t in tools)
    if keep_roles:
        protocol = agents.internlm2_agent.Internlm2Protocol(
            meta_prompt=prompts["meta"][lang], plugin_prompt=prompts["plugin"][lang].format(tools=tool_names)
        )
        agent = agents.Internlm2Agent(llm=llm, plugin_executor=executor, protocol=protocol, max_turn=max_turns)
    else:
        agent = agents.ReAct(llm=llm, action_executor=executor, max_turn=max_turns)
    reply = agent.chat(question)
    steps = [
        {"tool": a.type, "args": a.args, "result": (a.format_result() or "")[:300], "error": a.errmsg}
        for a in reply.actions
    ]
    finished = reply.state == AgentStatusCode.END or any(a.type == "FinishAction" for a in reply.actions)
    text, citations, errors = check_citations(reply.response or "", assistant.knowledge, retrieved)
    if not finished or degenerate(text, question, len(citations)):
        # Small models rarely keep to the tool-calling format, or end with "Sorry that I cannot answer";
        # rather than that, the retrieval-grounded answer through the same model (which itself gives way to
        # the composed answer when the model's is degenerate).
        result = assistant.ask(question, llm=client, k=3, extra_sources=retrieved)
        return {
            "answer": result.answer,
            "refused": False,
            "fallback": "rag",
            "citations": [c.__dict__ for c in result.citations],
            "citation_errors": result.citation_errors,
            "steps": steps,
        }
    return {
        "answer": with_sources(text, citations, lang),
        "refused": False,
        "fallback": None,
        "citations": [c.__dict__ for c in citations],
        "citation_errors": errors,
        "steps": steps,
    }


def agent_command(
    question: str,
    endpoint: str = typer.Option(
        None, "--endpoint", help="OpenAI-compatible URL (default: PLRA_ENDPOINT or the server `plra serve` started)"
    ),
    max_turns: int = typer.Option(4, "--max-turns", help="tool calls before the agent must answer"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Answer with a Lagent agent that searches arXiv and the knowledge base; citations are checked."""
    from plra.llm import default_endpoint

    url = endpoint or default_endpoint()
    if not url:
        raise PlraError("the agent needs a served model: run `plra serve` or pass --endpoint URL")
    result = run(question, url, max_turns)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    for step in result["steps"]:
        typer.echo(
            f"[{step['tool']}] {json.dumps(step['args'], ensure_ascii=False)} -> "
            f"{step['error'] or step['result'][:120]}",
            err=True,
        )
    typer.echo(result["answer"])
