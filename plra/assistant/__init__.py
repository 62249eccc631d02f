"""The assistant layer: answering a researcher's question.

Owns the answer (`answer`: retrieval, answer plans, checked citations, refusal outside the field), the intents that
pick a plan (`intents`), the composer that writes cited prose without a model (`compose`), follow-ups and history
(`conversation`), the terminal chat (`chat`) and the Lagent agent (`agent`). It builds on the knowledge layer and the
base modules (prompts in `plra.prompts`, the model client in `plra.llm`) and loads local weights through
`plra.toolchain.model`; it never imports research, data or the pipeline.
"""
