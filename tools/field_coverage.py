"""How much of the field's public curated lists the knowledge base holds: per list, per list section, per year,
and for the papers two or more lists agree on. The lists (which repository, which commit, the arXiv ids of each
section) are data: datasets/<field>/coverage/*.yaml.

    .venv/bin/python tools/field_coverage.py [--json] [--min-lists 2] [--missing]

Coverage counts arXiv ids; a list that links a wrong id counts that id as missing (the curators checked each
paper on its own abstract page, so a wrong link never entered the knowledge base).
"""

from __future__ import annotations

import argparse
import collections
import json
from typing import Any

import yaml

from plra.knowledge import kb as kb_module
from plra.settings import load_knowledge
from plra.types import id_year


def load_lists(folder) -> list[dict[str, Any]]:
    lists: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.yaml")):
        for entry in yaml.safe_load(path.read_text(encoding="utf-8"))["lists"]:
            lists.setdefault(entry["repo"].lower(), entry)  # a repository counts once, whichever file names it
    return list(lists.values())


def share(have: int, total: int) -> dict[str, Any]:
    return {"held": have, "named": total, "share": round(have / total, 3) if total else None}


def coverage(lists: list[dict[str, Any]], held: set[str], min_lists: int = 2) -> dict[str, Any]:
    named_by: dict[str, set[str]] = collections.defaultdict(set)
    per_list = {}
    for entry in lists:
        ids = {i for section in entry["sections"] for i in section["ids"]}
        for arxiv_id in ids:
            named_by[arxiv_id].add(entry["id"])
        per_list[entry["id"]] = {
            "repo": entry["repo"],
            "commit": entry["commit"][:12],
            "date": str(entry["date"]),
            **share(len(ids & held), len(ids)),
            "sections": {s["name"]: share(len(set(s["ids"]) & held), len(set(s["ids"]))) for s in entry["sections"]},
        }
    every = set(named_by)
    agreed = {i for i, names in named_by.items() if len(names) >= min_lists}
    years: dict[int, list[str]] = collections.defaultdict(list)
    for arxiv_id in every:
        years[id_year(arxiv_id) or 0].append(arxiv_id)
    return {
        "lists": per_list,
        "all_named": share(len(every & held), len(every)),
        f"named_by_{min_lists}_or_more": share(len(agreed & held), len(agreed)),
        "by_year": {y: share(len(set(ids) & held), len(ids)) for y, ids in sorted(years.items())},
        "missing_agreed": sorted(agreed - held, key=lambda i: (-len(named_by[i]), i)),
        "named_by": {i: sorted(n) for i, n in named_by.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--min-lists", type=int, default=2, help="lists that must agree for the consensus figure")
    parser.add_argument("--missing", action="store_true", help="print the agreed papers the knowledge base lacks")
    args = parser.parse_args()
    settings = load_knowledge()
    knowledge = kb_module.load(settings)
    report = coverage(load_lists(settings.field_dir / "coverage"), set(knowledge.papers), args.min_lists)
    report["knowledge_base"] = {"papers": len(knowledge.papers), "reviewed_through": str(knowledge.reviewed_through)}
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "named_by"}, ensure_ascii=False, indent=1))
        return
    agreed = report[f"named_by_{args.min_lists}_or_more"]
    print(f"knowledge base: {len(knowledge.papers)} curated papers, reviewed through {knowledge.reviewed_through}")
    print(f"papers named by {args.min_lists}+ lists: {agreed['held']} of {agreed['named']} ({agreed['share']:.0%})")
    print(f"all papers the lists name: {report['all_named']['held']} of {report['all_named']['named']}")
    print("\n| list | commit | date | held | named | share |\n|---|---|---|---|---|---|")
    for name, row in report["lists"].items():
        print(f"| {name} | {row['commit']} | {row['date']} | {row['held']} | {row['named']} | {row['share']:.0%} |")
    print("\n| year | held | named | share |\n|---|---|---|---|")
    for year, row in report["by_year"].items():
        print(f"| {year or 'old-style id'} | {row['held']} | {row['named']} | {row['share']:.0%} |")
    if args.missing:
        print("\nagreed papers not held (lists naming them):")
        for arxiv_id in report["missing_agreed"]:
            print(f"  {arxiv_id}  {', '.join(report['named_by'][arxiv_id])}")


if __name__ == "__main__":
    main()
