"""The pipeline's last stage: the served model answers a few questions with retrieval and checked citations,
and the Lagent agent answers the first one with its tools.

    python -m plra.toolchain.examples URL PROFILE QUESTION [QUESTION ...]   # {"examples": [...]} as the last line

A slow machine must not fail the main job: the client waits in proportion to the token budget (the
profile's), an answer that still times out is retried once with half the budget, and an answer that
fails anyway is reported with its error instead of ending the run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from plra.assistant import agent
from plra.assistant.answer import Assistant
from plra.errors import PlraError
from plra.llm import LLMClient, LLMTimeout
from plra.settings import load_profile


def with_retry(answer: Callable[[LLMClient], dict[str, Any]], url: str, profile, temperature: float):
    """answer(client) with the profile's budget; on a timeout once more with half of it. Never raises a
    PlraError: the failure becomes {"error": ..., "attempts": [...]}."""
    budget = profile.answer_max_tokens
    attempts: list[dict[str, Any]] = []
    for tokens in (budget, max(16, budget // 2)):
        client = LLMClient.for_profile(url, profile, max_tokens=tokens, temperature=temperature)
        try:
            return answer(client) | {"max_tokens": tokens, "attempts": attempts}
        except LLMTimeout as err:
            attempts.append({"max_tokens": tokens, "error": str(err)})
        except PlraError as err:  # not a slow answer: a smaller budget would not help
            attempts.append({"max_tokens": tokens, "error": str(err)})
            break
    return {"error": attempts[-1]["error"], "attempts": attempts}


def main() -> None:
    url, profile_name, questions = sys.argv[1], sys.argv[2], sys.argv[3:]
    profile = load_profile(profile_name)
    assistant = Assistant()
    examples = []
    for question in questions:

        def answer(client: LLMClient, question: str = question) -> dict[str, Any]:
            result = assistant.ask(question, llm=client, k=3)
            return {"answer": result.answer, "refused": result.refused,
                    "citations": [c.arxiv_id for c in result.citations],
                    "citation_errors": result.citation_errors}  # fmt: skip

        example = {"question": question, **with_retry(answer, url, profile, temperature=0.0)}
        examples.append(example)
        print(f"Q: {question}\nA: {example.get('answer') or 'failed: ' + example['error']}\n", flush=True)

    def agent_answer(client: LLMClient) -> dict[str, Any]:
        reply = agent.run(questions[0], url, max_turns=2, client=client)
        return {
            "answer": reply["answer"],
            "agent_tools": [step["tool"] for step in reply["steps"]],
            "fallback": reply.get("fallback"),
            "citations": [c["arxiv_id"] for c in reply["citations"]],
        }

    agent_example = {"question": questions[0], **with_retry(agent_answer, url, profile, temperature=0.2)}
    shown = agent_example.get("answer") or "failed: " + agent_example["error"]
    print(f"agent ({', '.join(agent_example.get('agent_tools', [])) or 'no tools'}): {shown}\n", flush=True)
    print(json.dumps({"examples": examples, "agent": agent_example}, ensure_ascii=False))


if __name__ == "__main__":
    main()
