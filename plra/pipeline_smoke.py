"""The pipeline's last stage: the served model answers a few questions with retrieval and checked citations,
and the Lagent agent answers the first one with its tools.

    python -m plra.pipeline_smoke URL QUESTION [QUESTION ...]   # prints {"examples": [...]} as the last line
"""

from __future__ import annotations

import json
import sys

from plra import agent
from plra.llm import LLMClient
from plra.rag import Assistant


def main() -> None:
    url, questions = sys.argv[1], sys.argv[2:]
    assistant = Assistant()
    client = LLMClient.from_url(url, max_tokens=160, temperature=0.0)
    examples = []
    for question in questions:
        result = assistant.ask(question, llm=client, k=3)
        examples.append({"question": question, "answer": result.answer, "refused": result.refused,
                         "citations": [c.arxiv_id for c in result.citations],
                         "citation_errors": result.citation_errors})  # fmt: skip
        print(f"Q: {question}\nA: {result.answer}\n", flush=True)
    reply = agent.run(questions[0], url, max_turns=2)
    tools = [step["tool"] for step in reply["steps"]]
    print(f"agent ({', '.join(tools) or 'no tools'}): {reply['answer']}\n", flush=True)
    agent_example = {
        "question": questions[0],
        "answer": reply["answer"],
        "agent_tools": tools,
        "fallback": reply.get("fallback"),
        "citations": [c["arxiv_id"] for c in reply["citations"]],
    }
    print(json.dumps({"examples": examples, "agent": agent_example}, ensure_ascii=False))


if __name__ == "__main__":
    main()
