"""Answer plans built on the field's synthesis: a verdict from the claim that answers the question, the topic
overview's parts for approaches, choices and open problems, and the reviewed-through date for recent work."""

from __future__ import annotations

import re

import pytest

from plra.assistant import intents
from plra.assistant.answer import Assistant
from plra.types import cited_ids


@pytest.fixture(scope="module")
def assistant() -> Assistant:
    return Assistant()


@pytest.mark.parametrize(
    ("question", "wanted"),
    [
        ("Is DPO better than RLHF with PPO for personalization?", "evidence"),
        ("个性化对齐和多元化对齐有什么区别？", "difference"),
        ("discriminative vs generative LLM recommenders — what's the split?", "difference"),
        ("Which benchmark should I use for personalized text generation?", "recommend"),
        ("我该用哪个基准评测长期记忆？", "recommend"),
        ("What are the main families of approaches to personalizing LLMs?", "overview"),
        ("What is new in personalized memory in 2026?", "recent"),
        ("最近个性化对齐有哪些新进展？", "recent"),
        ("What did MemGPT find?", None),
        ("Does assigning a persona make an LLM less safe?", "evidence"),
    ],
)
def test_the_synthesis_intent_follows_what_is_asked(question, wanted):
    assert intents.synthesis_intent(question) == wanted


@pytest.mark.parametrize(
    ("question", "claim_id"),
    [
        ("Is DPO better than RLHF with PPO for personalization?", "personalized-alignment-01"),
        ("个性化对齐和多元化对齐有什么区别？", "pluralistic-alignment-01"),
        ("Can LLM judges evaluate personalized text?", "evaluation-01"),
        ("Should I use retrieval or fine-tune a LoRA per user when a user has few examples?", "retrieval-augmented-01"),
    ],
)
def test_an_evidence_question_opens_with_the_claims_verdict(assistant, question, claim_id):
    result = assistant.ask(question)
    claim = next(c for c in assistant.knowledge.claims if c.id == claim_id)
    assert result.intent == "evidence"
    lang = "zh" if "？" in question else "en"
    verdict = claim.claim_zh if lang == "zh" else claim.claim_en
    first_words = verdict.split("[arXiv:")[0][:40]
    assert result.answer.startswith(first_words)  # the verdict is the first sentence, not a list of papers
    cited = [c.arxiv_id for c in result.citations]
    assert set(cited[: len(cited_ids(verdict))]) <= set(claim.papers())  # the verdict cites the claim's papers
    assert not result.citation_errors


def test_an_overview_question_is_organized_by_family_then_choice(assistant):
    result = assistant.ask("What are the main families of approaches to personalizing LLMs, and when to pick each?")
    overview = assistant.knowledge.overviews["survey"]
    assert result.intent == "overview"
    families = overview.section("families").en.split("[arXiv:")[0][:40]
    choosing = overview.section("choosing").en.split("[arXiv:")[0][:40]
    assert result.answer.startswith(families) and choosing in result.answer
    assert len(result.citations) >= 4 and not result.citation_errors


def test_open_problems_come_from_the_topic_asked_about(assistant):
    result = assistant.ask("What are the open problems in memory-based personalization?")
    memory = assistant.knowledge.overviews["memory"].section("open_problems").en
    assert result.intent == "open_question"
    assert result.answer.startswith(memory.split("[arXiv:")[0][:40])
    cited = {c.arxiv_id for c in result.citations}
    assert cited == set(cited_ids(memory)) & set(assistant.knowledge.papers)


def test_a_recommendation_of_benchmarks_names_benchmarks(assistant):
    result = assistant.ask("Which benchmark should I use to evaluate the long-term memory of a chat assistant?")
    cited = [assistant.knowledge.papers[c.arxiv_id] for c in result.citations]
    assert result.intent in ("evidence", "recommend")
    assert "2410.10813" in {p.arxiv_id for p in cited}  # LongMemEval
    assert sum("benchmark" in p.topics for p in cited) >= len(cited) - 1  # benchmarks, not surveys or systems


@pytest.mark.parametrize("question", ["What is new in personalized memory in 2026?", "最近个性化对齐有哪些新进展？"])
def test_recent_work_states_how_far_the_knowledge_base_reaches(assistant, question):
    result = assistant.ask(question)
    knowledge = assistant.knowledge
    assert result.intent == "recent"
    assert str(knowledge.reviewed_through) in result.answer.splitlines()[0]
    assert "plra kb update" in result.answer
    years = [knowledge.papers[c.arxiv_id].year for c in result.citations]
    assert years and years == sorted(years, reverse=True) and years[0] == max(p.year for p in knowledge.papers.values())


def test_a_paper_question_keeps_its_card_plan(assistant):
    assert assistant.ask("What did MemGPT find?").intent == "paper"


def test_the_rubric_catches_templates_repeats_and_citations_their_entry_does_not_support(assistant):
    from plra.assistant import rubric

    knowledge = assistant.knowledge
    lamp = knowledge.papers["2304.11406"]
    assert rubric.supported(f"{lamp.key_findings[0]} [1]", knowledge, "2304.11406")
    assert not rubric.supported("Sourdough crumb opens with longer fermentation [1].", knowledge, "2304.11406")
    finding = lamp.key_findings[0].rstrip(".")
    answer = (f"Here is how they compare. {finding} [1]. Bread rises in a warm oven overnight [1]. "
              f"{finding} [1].\n\nSources:\n[1] LaMP")  # fmt: skip
    assert rubric.stock_phrases(answer) == ["here is how"]
    assert rubric.repeated_sentences(answer) == 1
    assert rubric.citations_checked(answer, ["2304.11406"], knowledge) == (3, 1)
    row = {
        "id": "t",
        "kind": "evidence",
        "lang": "en",
        "key_points": [lamp.key_findings[0]],
        "expected": ["2304.11406"],
    }
    scored = rubric.score(row, answer, "general", ["2304.11406"], knowledge)
    assert scored["plan_fit"] is False and scored["template"] is True and scored["expected_cited"] == 1.0
    assert scored["parts"]["synthesis"] == 0 and scored["parts"]["covers_key_points"] == 2


# ------------------------------------------------------------------ answers that answer (issue 24)

STRINGING = ["finds that", "also reports that", "In contrast,", "both belong to", "的研究表明", "同样指出", "与之不同"]


def test_the_support_check_drops_unsupported_citations_and_sentences(assistant):
    from plra.assistant import support

    knowledge = assistant.knowledge
    finding = knowledge.papers["2304.11406"].key_findings[0].rstrip(".")
    text = (f"{finding} [arXiv:2304.11406]. Sourdough crumb opens with longer fermentation [arXiv:2304.11406]"
            "[arXiv:2310.08560]. A sentence citing nothing.")  # fmt: skip
    kept, dropped = support.enforce(text, knowledge)
    assert kept == f"{finding} [arXiv:2304.11406]. A sentence citing nothing."  # the unsupported sentence is gone
    assert {d["cited"] for d in dropped} == {"2304.11406", "2310.08560"}
    # An unsupported citation beside a supported one goes; the sentence stays with the one that backs it.
    lamp_only = "LaMP has citation identification, movie tagging and product rating tasks [arXiv:2304.11406]"
    kept, dropped = support.enforce(f"{lamp_only}[arXiv:2410.10813].", knowledge)
    assert kept == f"{lamp_only}." and [d["cited"] for d in dropped] == ["2410.10813"]
    # A curated overview sentence stays whole: it was written from the papers, a word count cannot overrule it.
    assert support.enforce(text, knowledge, curated=text)[0] == text


def test_a_claims_conditions_keep_their_citations_under_the_answers_label(assistant):
    # The conditions are curated and cited in the claim's file; the answer prefixes "When this holds:" and
    # renumbers the citations, and neither may make the support check drop them.
    result = assistant.ask(
        "For personalizing a writing assistant, are a few demonstrations better than pairwise preference feedback?"
    )
    conditions = next(line for line in result.answer.splitlines() if line.startswith("When this holds:"))
    assert not result.citation_errors and len(re.findall(r"\[\d+\]", conditions)) >= 2


@pytest.mark.parametrize(
    "question",
    [
        "Which papers study sycophancy in LLMs?",
        "列几篇做大模型用户模拟器的论文。",
        "What is pluralistic alignment?",
        "What is persona drift?",
        "有哪些个性化对齐的论文？",
    ],
)
def test_composed_answers_cite_only_what_entries_support_and_do_not_string_papers(assistant, question):
    from plra.assistant import rubric

    result = assistant.ask(question)
    assert not result.refused
    cited = [c.arxiv_id for c in result.citations]
    assert cited and rubric.citations_checked(result.answer, cited, assistant.knowledge)[1] == 0
    assert not [p for p in STRINGING if p in result.answer]


def test_a_difference_no_claim_states_comes_from_both_glossary_entries_first(assistant):
    result = assistant.ask("What's the difference between a persona and a user profile?")
    assert result.intent == "definition"
    first = result.answer.split(".")[0].lower()
    assert "persona" in first and "user profile" in first and "differ" in first


def test_a_longer_phrase_than_a_glossary_term_is_not_given_that_terms_definition(assistant):
    persona = next(t for t in assistant.knowledge.glossary if t.term == "Persona")
    result = assistant.ask("What is persona drift?")
    assert result.intent != "definition"
    assert persona.en[:40] not in result.answer
    assert intents.asked_phrase("What is persona drift?") == "persona drift"


def test_ideas_building_on_a_paper_come_from_its_topics_open_problems(assistant):
    result = assistant.ask(
        "I'd like to build on StyleVector for my next project. What research directions look promising?"
    )
    topic = assistant.knowledge.papers["2503.05213"].topics[0]
    open_problems = assistant.knowledge.overviews[topic].section("open_problems").en
    assert result.intent == "open_question"
    assert {c.arxiv_id for c in result.citations} <= set(cited_ids(open_problems))


def test_a_list_holds_only_papers_on_what_is_asked(assistant):
    from plra.assistant.compose import mentions

    term = next(t for t in assistant.knowledge.glossary if t.term == "User simulator")
    result = assistant.ask("列几篇做大模型用户模拟器的论文。")
    assert result.intent == "list" and len(result.citations) >= 2
    # each one on the term: curated as its paper in the glossary, or speaking of it in its entry
    assert all(c.arxiv_id in term.papers or mentions(assistant.knowledge.papers[c.arxiv_id], term)
               for c in result.citations)  # fmt: skip


def test_recent_work_keeps_to_the_topic_asked(assistant):
    result = assistant.ask("最近个性化对齐有哪些新进展？")
    assert result.intent == "recent"
    assert all("personalized-alignment" in assistant.knowledge.papers[c.arxiv_id].topics for c in result.citations)


@pytest.mark.parametrize(
    ("question", "wanted"),
    [
        ("大模型做推荐主要有哪几类做法？", "overview"),
        ("What are the main design families of memory for a companion chatbot, and how do they differ?", "overview"),
        ("个性化大模型的隐私方面，目前还有哪些没解决的问题？", "open_question"),
        ("做多元化对齐的偏好数据收集，还有什么可以改进的想法？", "open_question"),
        ("Need a benchmark for long-form personalized generation, not the short LaMP tasks. Suggestions?", "recommend"),
    ],
)
def test_a_neighbouring_plan_does_not_win(assistant, question, wanted):
    assert assistant.ask(question).intent == wanted


@pytest.mark.parametrize(
    ("question", "path"),
    [
        ("我做推荐系统，想入门个性化大模型", "recommendation-and-user-modelling"),
        ("I come from recommender systems; what should I read to get into personalized LLMs?",
         "recommendation-and-user-modelling"),
        ("New to memory for chat agents. Where do I start?", "memory-and-long-term-dialogue"),
        ("I am new to this field, where should I start?", "getting-started"),
    ],
)  # fmt: skip
def test_a_newcomer_gets_the_path_of_the_background_they_state(assistant, question, path):
    lang = "zh" if "我" in question else "en"
    plan = assistant.plan(question, question, lang, 5)
    assert plan.intent == "newcomer" and plan.path is not None and plan.path.id == path


def test_a_follow_up_asking_for_other_work_answers_with_other_papers(assistant):
    history = [
        {"role": "user", "content": "What did Generative Agents do?"},
        {"role": "assistant", "content": "Generative Agents [arXiv:2304.03442] store observations in a memory "
                                         "stream and retrieve them by recency, importance and relevance."},
    ]  # fmt: skip
    result = assistant.ask("Has anyone improved on its memory retrieval scoring?", history=history)
    cited = [c.arxiv_id for c in result.citations]
    assert result.intent == "general" and cited and "2304.03442" not in cited  # the subject is the later work
    assert assistant.ask("What did Generative Agents find?").intent == "paper"  # its card, when it is the subject


def test_related_work_argues_the_lines_of_work_not_one_papers_card(assistant):
    result = assistant.ask("Related work paragraph on persona-grounded dialogue, from PersonaChat onward please.")
    assert result.intent == "overview" and not result.answer.startswith('"')  # not PersonaChat's card
    assert "1801.07243" in {c.arxiv_id for c in result.citations} and len(result.citations) >= 4
    assert "\n\n" in result.answer.split("\n\nSources:")[0]  # more than one paragraph: families, then evidence


@pytest.mark.parametrize(
    ("question", "pick"),
    [
        (
            "Which benchmark should I use to evaluate long-term memory of a personalized chat assistant across many "
            "sessions?",
            "LongMemEval",
        ),
        ("我该用哪个基准评测聊天助手的长期记忆？", "LongMemEval"),
    ],
)
def test_a_benchmark_recommendation_opens_with_what_to_use(assistant, question, pick):
    # A recommendation names the benchmark to start with in its first sentence, not a verdict on what
    # benchmarks show ("Only partly: ..."); the other benchmarks follow as alternatives for other goals.
    result = assistant.ask(question)
    first = re.split(r"(?<=[.。])", result.answer)[0]
    assert result.intent == "recommend"
    assert pick in first and not first.startswith("Only partly")
    assert not result.citation_errors


@pytest.mark.parametrize(
    "question",
    [
        "OPPU、Per-Pcs、PLoRA 这三种按用户参数化的方法，怎么比较？",
        "Compare DITTO, CIPHER (PRELUDE) and PROSE for learning a user's writing preferences.",
    ],
)
def test_a_comparison_sets_every_named_paper_on_shared_axes(assistant, question):
    # Every compared paper is in the prose, not only in the table, and nothing claims that papers that may agree
    # "differ in what they show".
    result = assistant.ask(question)
    prose = result.answer.split("|")[0]
    assert result.intent == "compare"
    assert not re.search(r"differ in what they show|结论不同", result.answer)
    assert len(set(re.findall(r"\[(\d+)\]", prose))) == 3
    assert re.search(r"In method|方法上", prose)
    assert not result.citation_errors


def test_recent_work_in_a_named_year_holds_only_that_years_papers(assistant):
    # "2026 年的新进展" is not answered with 2024 and 2025 papers; the answer says what the knowledge base holds
    # from that year and how far it is reviewed.
    result = assistant.ask("最近（2026 年）个性化奖励模型有什么新进展？")
    assert result.intent == "recent"
    assert result.citations and all(c.year == 2026 for c in result.citations)
    assert "2026 年" in result.answer.splitlines()[0] and str(assistant.knowledge.reviewed_through) in result.answer


def test_a_list_of_representative_papers_is_not_cut_to_one_by_the_way_it_is_asked(assistant):
    # "代表性" says how to list, not what about: papers need not use the word.
    result = assistant.ask("请列出关于个性化奖励模型（personalized reward model）的代表性论文。")
    assert result.intent == "list" and len(result.citations) >= 4


def test_a_list_of_surveys_holds_surveys(assistant):
    result = assistant.ask("有哪些关于大模型记忆机制的综述？想挑一两篇系统看看。")
    papers = [assistant.knowledge.papers[c.arxiv_id] for c in result.citations]
    assert papers and all("survey" in p.topics or re.search(r"survey|review", p.title, re.I) for p in papers)


@pytest.mark.parametrize(
    ("sentence", "motivation"),
    [
        ("Existing reward models ignore individual users.", True),
        ("但现有奖励模型基准主要考察回复的通用质量。", True),
        ("MRM提升了少样本个性化效果和跨用户的稳健性。", False),
        ("Retrieval beats fine-tuning on six of seven tasks.", False),
    ],
)
def test_a_blurb_prefers_the_finding_to_the_motivation(sentence, motivation):
    from plra.assistant.compose import MOTIVATION

    assert bool(MOTIVATION.search(sentence)) == motivation


def test_research_lines_are_an_overview_not_a_list(assistant):
    assert assistant.ask("大语言模型角色扮演（role-play）方向目前有哪些主要的研究路线？").intent == "overview"


def test_a_quoted_phrase_is_what_a_definition_asks_about(assistant):
    # "What's 'persona sparsity' ..." asks about the phrase, not the glossary's "persona": the paper that names
    # the phrase answers it.
    assert intents.asked_phrase("What's 'persona sparsity' in the LLM-as-judge context?") == "persona sparsity"
    result = assistant.ask("What's 'persona sparsity' in the LLM-as-judge context?")
    assert result.intent == "definition"  # defined by the sentence of the paper that names it
    assert "persona sparsity" in result.answer.split("\n")[0].lower()
    assert result.citations[0].arxiv_id == "2406.11657"


def test_a_difference_contrasts_the_two_sides_not_the_field_it_is_asked_within(assistant):
    result = assistant.ask("用户画像（user profile）和用户记忆（memory）在个性化大模型中有什么区别？")
    first = result.answer.split("\n")[0]
    assert result.intent == "definition"
    assert "用户画像" in first and "记忆" in first and "个性化大语言模型" not in first


def test_a_glossary_definition_keeps_the_citation_its_paper_backs(assistant):
    result = assistant.ask("“算法保真度”（algorithmic fidelity）指的是什么？")
    assert "2209.06899" in {c.arxiv_id for c in result.citations} and not result.citation_errors


@pytest.mark.parametrize(
    ("question", "path"),
    [
        (
            "Coming from NLP dialogue systems — how do I get into role-playing agents? Reading list please.",
            "Role-play and persona agents",
        ),
        (
            "I'm a first-year PhD student starting on personalized LLMs. What should I read first, and in what order?",
            "Getting started with personalized LLMs",
        ),
        ("推荐一些个性化大模型的入门资料", "Getting started with personalized LLMs"),
        ("我做推荐系统，想入门个性化大模型", "LLMs for recommendation and user modelling"),
    ],
)
def test_a_reading_path_goes_where_the_reader_wants_to_go(assistant, question, path):
    # The destination ("get into role-playing agents") outweighs the background; a reader's stage ("first-year")
    # and the verb "推荐一些" name no path.
    result = assistant.ask(question)
    wanted = next(p for p in assistant.knowledge.paths if p.title_en == path)
    first = result.answer.split("\n")[0]
    assert result.intent == "newcomer" and (wanted.title_en in first or wanted.title_zh in first)


def test_what_a_question_rules_out_does_not_pick_its_topic(assistant):
    from plra.assistant.synthesis import without_negated

    question = (
        "What are the main approaches to personalizing LLM outputs to individual users without per-user fine-tuning?"
    )
    assert "fine-tuning" not in without_negated(question)
    assert assistant.plan(question, question, "en", 5).topic != "peft"


def test_a_related_work_request_is_on_its_subject_not_on_the_request_words(assistant):
    question = "帮我写一段关于“个性化奖励模型”的相关工作，带引用。"
    assert assistant.plan(question, question, "zh", 5).topic == "personalized-alignment"


def test_a_question_about_one_point_of_a_paper_is_answered_first(assistant):
    # Not the card's "Methods: ... Data: ..." first: the entry's sentence on the asked point opens the answer.
    result = assistant.ask("In LaMP, what's the difference between the user-based and the time-based split?")
    first = result.answer.split("\n")[0]
    assert result.intent == "paper"
    assert "split" in first and not first.startswith(('"', "Methods"))
    card = assistant.ask("What did MemGPT find?").answer
    assert card.startswith('"MemGPT')  # a question about the paper as a whole still gets its card


def test_a_method_recommendation_puts_the_advice_for_the_stated_constraint_first(assistant):
    # "I can't fine-tune the API model": the frozen-model advice opens, not DITTO's training route, and no claim
    # about how many samples suffice.
    result = assistant.ask(
        "My users give me fewer than ten writing samples each and I can't fine-tune the API "
        "model. What method should I use?"
    )
    first = re.split(r"(?<=\.)\s", result.answer)[0]
    assert result.intent == "recommend"
    assert re.search(r"frozen|API", first) and "DITTO" not in first
    assert not result.citation_errors


def test_a_choice_between_named_options_keeps_the_claims_verdict(assistant):
    result = assistant.ask("Should I use retrieval or fine-tune a LoRA per user when a user has few examples?")
    assert result.intent == "evidence"


def test_a_follow_up_on_a_point_of_the_paper_under_discussion_answers_that_point(assistant):
    history = [
        {"role": "user", "content": "Do LLMs forget preferences stated earlier in a long chat?"},
        {"role": "assistant", "content": "Yes. PrefEval [arXiv:2502.09597] plants preferences in a chat."},
    ]
    result = assistant.ask("Does fine-tuning on it actually fix the problem, and does that hold for longer contexts?",
                           history=history)  # fmt: skip
    first = result.answer.split("\n")[0]
    assert "fine-tuning" in first.lower() and "longer contexts" in first


def test_a_short_name_another_paper_owns_is_not_used_for_a_later_paper(assistant):
    # 2602.12394 lists "PersonaGym" among its aliases, but PersonaGym is the 2024 benchmark (2407.18416).
    later = assistant.knowledge.papers["2602.12394"]
    assert "PersonaGym" in later.aliases
    assert assistant.name_index.display_name("2602.12394") != "PersonaGym"
    assert assistant.name_index.display_name("2407.18416") == "PersonaGym"


def test_a_difference_an_overview_states_opens_with_that_sentence(assistant):
    # No claim or glossary pair states the split of LLM recommenders; the overview sentence that does opens.
    result = assistant.ask("discriminative vs generative LLM recommenders — what's the split?")
    first = result.answer.split("\n")[0].lower()
    assert "discriminative" in first and "generative" in first
    assert not result.citation_errors


def test_a_benchmark_recommendation_draws_on_the_overview_that_covers_the_goal(assistant):
    # "remembers facts across sessions" is memory's benchmarks part, not the general benchmark topic's list; a
    # claim written to answer "which benchmark for X" still answers its own question.
    result = assistant.ask(
        "Which benchmark should I use to test whether my assistant remembers facts about a user across many sessions?"
    )
    memory = set(cited_ids(assistant.knowledge.overviews["memory"].section("benchmarks").en))
    assert result.intent == "recommend" and {c.arxiv_id for c in result.citations} <= memory
    assert assistant.ask("Which benchmark should I use for personalized text generation?").intent == "evidence"
    long_form = assistant.ask(
        "Need a benchmark for long-form personalized generation (whole emails, reviews, long "
        "answers), not the short-output LaMP tasks. Suggestions?"
    )
    assert long_form.intent == "recommend" and "LongLaMP" in long_form.answer.split(".")[0]
    foil = assistant.ask(
        "Need a benchmark for long-form personalized generation, not the short LaMP tasks. Suggestions?"
    )
    assert not foil.answer.startswith("For what you describe, start with LaMP.")  # the foil is never the pick


def test_a_list_for_someone_who_will_read_one_or_two_says_which(assistant):
    result = assistant.ask("有哪些关于大模型记忆机制的综述？想挑一两篇系统看看。")
    body = result.answer.split("参考文献")[0]
    assert "如果只读一两篇" in body
    plain = assistant.ask("有哪些关于大模型记忆机制的综述？")
    assert "如果只读一两篇" not in plain.answer  # only when a choice is asked for
