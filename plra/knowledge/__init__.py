"""The knowledge layer: what the field knows and how it is found.

Owns the knowledge base of one field (curated and incoming papers, glossary, reading paths, taxonomy, the written
synthesis of overviews and claims), its validation, search (`retrieval`), names and aliases (`names`), the relevance
gate for new papers, the arXiv client, and citations in BibTeX/APA (`cite`). It imports only the top-level base
modules (`errors`, `paths`, `io`, `types`, `settings`): never the assistant, research, toolchain or data packages.
"""
