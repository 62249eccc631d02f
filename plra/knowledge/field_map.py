"""The field map: curated papers per topic per year, as a heatmap PNG (the app's Learn tab)."""

from __future__ import annotations

import collections
from pathlib import Path

from plra.knowledge.kb import KnowledgeBase


def counts(kb: KnowledgeBase) -> tuple[list[str], list[int], list[list[int]]]:
    """(topics in taxonomy order, years ascending, count[topic][year]); a paper counts under each of its topics."""
    cells = collections.Counter((t, p.year) for p in kb.papers.values() for t in p.topics)
    years = sorted({p.year for p in kb.papers.values()})
    topics = list(kb.topics)
    return topics, years, [[cells.get((t, y), 0) for y in years] for t in topics]


def render(kb: KnowledgeBase, path: Path) -> Path:
    """Write the heatmap to path (PNG) and return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    topics, years, grid = counts(kb)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(years), 0.5 + 0.36 * len(topics)), dpi=110)
    image = ax.imshow(grid, cmap="Blues", aspect="auto")
    ax.set_xticks(range(len(years)), [str(y) for y in years])
    ax.set_yticks(range(len(topics)), topics)
    peak = max((max(row) for row in grid), default=0)
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            if value:
                ax.text(j, i, str(value), ha="center", va="center", fontsize=7,
                        color="white" if value > peak / 2 else "black")  # fmt: skip
    reviewed = f", reviewed through {kb.reviewed_through}" if kb.reviewed_through else ""
    ax.set_title(f"{len(kb.papers)} curated papers by topic and year{reviewed}", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.03)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
