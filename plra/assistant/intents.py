"""What a question asks for, and the scope rules that the BM25 signal alone gets wrong.

Intents: definition, compare, paper, list, newcomer, open_question, general. Each has its own answer plan
(plra.assistant.compose). Two scope rules come before the fitted BM25 threshold (plra.assistant.answer):
- a newcomer or meta question ("我是新手，应该先读哪些论文？", "which benchmarks exist?") is in the field
  when it asks about learning, papers or the field itself, even with no field word in it;
- a near miss ("a personalized birthday poem", "quick sort in Python", "recommend me sci-fi movies") is
  a task from another domain that happens to share a word with the field: it is refused unless it names
  a paper or speaks of research.
"""

from __future__ import annotations

import re

INTENTS = ("definition", "compare", "paper", "list", "newcomer", "open_question", "general", "evidence", "overview",
           "recommend", "recent")  # fmt: skip


def _any(patterns: list[str]) -> re.Pattern:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


NEWCOMER = _any(
    [
        r"\bnew(comer)? to\b",
        r"\bbeginners?\b",
        r"\bnewbie\b",
        r"\bget(ting)? started\b",
        r"\bwhere (should|do|can) i (start|begin)\b",
        r"\bwhat should i read\b",
        r"\breading (list|path|order)\b",
        r"\bintroduct(ion|ory) (material|reading|paper)s?\b",
        r"\bi (come|am coming) from\b",
        r"\bmy background\b",
        r"\bi('m| am) (a|an) .{0,40}(student|researcher|engineer)\b",
        r"\blearn(ing)? (path|roadmap)\b",
        r"\broadmap\b",
        r"\bstudy plan\b",
        r"\bfirst (papers?|steps?)\b",
        r"\bstart(ing)? point\b",
        r"新手",
        r"入门",
        r"小白",
        r"先读",
        r"从哪(里|儿)?(开始|入手|读起)",
        r"学习(路线|路径|路径图|计划)",
        r"阅读(路线|顺序|清单|书单)",
        r"我(是|来自|之前做|以前做|原来做|背景是)",
        r"初学",
        r"零基础",
        r"怎么(开始|入手)",
    ]
)
OPEN_QUESTION = _any(
    [
        r"\bopen (problems?|questions?|challenges?)\b",
        r"\bunsolved\b",
        r"\bfuture (work|directions?|research)\b",
        r"\bresearch gaps?\b",
        r"\bchallenges?\b",
        r"\blimitations? of the field\b",
        r"\bwhat remains\b",
        r"\b(what's|what is|what remains) (still )?open\b",
        r"\bstill open\b",
        r"\bresearch (directions?|ideas?|opportunit(y|ies))\b",
        r"\bdirections? (look|looks|are|seem) promising\b",
        r"\bwhat (could|should|can) i (work on|build|study) next\b",
        r"\bnext project\b",
        r"^\s*(any )?(research )?ideas?\b",
        r"\b(any|some) (research )?ideas\b",
        r"(可以|值得)?改进的?(想法|地方|方向)",
        r"有什么.{0,6}想法",
        r"\bworth (pursuing|working on|studying)\b",
        r"(研究|后续|未来|可以做的|值得做的)方向",
        r"切入(点|的点)",
        r"值得(做|研究|深入)",
        r"(难题|问题).{0,4}(没|未|尚未|还没)(有)?解决",
        r"(没|未|尚未|还没)(有)?解决的?(难题|问题)",
        r"难题",
        r"开放(问题|难题)",
        r"未解决",
        r"未来(方向|研究|工作)",
        r"研究空白",
        r"挑战",
        r"难点",
        r"瓶颈",
    ]
)
COMPARE = _any(
    [
        r"\bcompare[sd]?\b",
        r"\bcomparison\b",
        r"\bvs\.?\b",
        r"\bversus\b",
        r"\bdiffer(s|ence|ences)?\b",
        r"\bhow is .{1,60} different\b",
        r"\bbetter than\b",
        r"\btrade-?offs?\b",
        r"对比",
        r"比较",
        r"区别",
        r"差异",
        r"不同",
        r"异同",
        r"相比",
        r"不一样",
        r"有啥(不同|区别)",
        r"\bwhat'?s the (split|distinction)\b",
        r"\bdistinguish\b",
        r"\bhow do .{1,60} differ\b",
    ]
)
# A question that asks what sets two things apart (the difference is the first sentence of its answer).
DIFFERENCE = _any(
    [
        r"\bdiffer(ence|ences|s)?\b",
        r"\bwhat'?s the (split|distinction)\b",
        r"\bdistinguish\b",
        r"\bvs\.?\b|\bversus\b",
        r"区别|差异|不一样|有啥不同|有什么不同|异同|不同之处",
    ]
)
DEFINITION = _any(
    [
        r"^\s*what (is|are) (a |an |the )?[^,?]{2,60}\??\s*$",
        r"\bdefine\b",
        r"\bdefinition of\b",
        r"\bwhat does .{2,40} mean\b",
        r"\bwhat('s| is) ['\"‘“]",
        r"\bwhat do (people|you|they) mean by\b",
        r"什么叫",
        r"\bmeaning of\b",
        r"\bexplain (the )?(concept|term|idea) of\b",
        r"什么是",
        r"是什么意思",
        r"是什么\s*[？?]?\s*$",
        r"的定义",
        r"的含义",
        r"何为",
        r"指的是什么",
        r"概念",
    ]
)
LIST = _any(
    [
        r"\bwhich (benchmarks?|datasets?|papers?|methods?|surveys?|works?)\b",
        r"\blist\b",
        r"\bwhat (benchmarks?|datasets?)\b",
        r"\bbenchmarks? (exist|are there)\b",
        r"\b(are there|any) (papers?|works?|studies)\b",
        r"\brecommend (some |a few )?(papers?|surveys?|benchmarks?)\b",
        r"\bsurveys? (on|of)\b",
        r"有哪些",
        r"哪些(基准|数据集|论文|方法|综述|工作)",
        r"列出",
        r"列(几|一些|些|举)",
        r"\bpapers? on\b",
        r"\bgive me (some |a few )?(papers?|benchmarks?|datasets?)\b",
        r"有没有(相关的?)?(论文|工作|研究)",
        r"推荐(一些|几篇)?(论文|综述|基准|资料)",
    ]
)
PAPER = _any(
    [
        r"\bwhat (did|does) .{2,60} (find|show|propose|do)\b",
        r"\bsummari[sz]e\b",
        r"\bsummary of\b",
        r"\btell me about\b",
        r"\bkey findings?\b",
        r"\bmain (results?|contributions?)\b",
        r"\bthat paper\b",
        r"\bthis paper\b",
        r"概括",
        r"总结",
        r"介绍一下",
        r"主要(结论|发现|贡献|结果)",
        r"这篇(论文|工作)",
        r"做了什么",
    ]
)

# The field's subject spoken of as research: such a question stays in the field whatever it asks.
RESEARCH = _any(
    [
        r"\bpapers?\b",
        r"\bresearch\b",
        r"\bliterature\b",
        r"\bsurveys?\b",
        r"\bbenchmarks?\b",
        r"\bthis field\b",
        r"\bthe field\b",
        r"\barxiv\b",
        r"\bLLMs?\b",
        r"\blanguage models?\b",
        r"\balignment\b",
        r"\bstate of the art\b",
        r"论文",
        r"文献",
        r"研究",
        r"综述",
        r"基准",
        r"这个(领域|方向)",
        r"该领域",
        r"大模型",
        r"语言模型",
        r"对齐",
    ]
)
# The assistant's own field, pointed at rather than named.
THIS_FIELD = _any([r"\b(this|your|the) (field|area|research area)\b", r"这个(领域|方向)", r"该领域", r"本领域"])
# Model families people compare "for personalization": a meta question, not a shopping question.
MODEL_FAMILIES = _any(
    [r"\bInternLM\d*", r"\bLlama[- ]?\d*", r"\bQwen\d*", r"\bDeepSeek", r"\bGPT-?\d", r"\bMistral", r"\bGemma"]
)
# Tasks from other domains that borrow the field's words ("personalized", "memory", "recommend", "role-play").
NEAR_MISS = _any(
    [
        r"\bpoems?\b",
        r"\bpoetry\b",
        r"\bsongs?\b",
        r"\blyrics\b",
        r"\bjokes?\b",
        r"\bstory\b",
        r"\bbirthday\b",
        r"\bgreeting card\b",
        r"\bmovies?\b",
        r"\bfilms?\b",
        r"\bnovels?\b",
        r"\brecipes?\b",
        r"\brestaurants?\b",
        r"\bhotels?\b",
        r"\bvacation\b",
        r"\btrip\b",
        r"\bworkout\b",
        r"\bdiet\b",
        r"\bweather\b",
        r"\bstock\b",
        r"\bquick ?sort\b",
        r"\bmerge ?sort\b",
        r"\bc\+\+",
        r"\bbooks?\b",
        r"\bbubble sort\b",
        r"\bin (python|java|c\+\+|javascript|rust|go)\b",
        r"\bwrite (a |an |some )?(code|function|script|program)\b",
        r"\bsql query\b",
        r"\btranslate\b",
        r"\blaptop\b",
        r"\biphone\b",
        r"\bandroid\b",
        r"\bram\b",
        r"\bhome screen\b",
        r"\bwallpaper\b",
        r"\bpirate\b",
        r"\bgifts?\b",
        r"\bhoroscope\b",
        r"\bbuy\b",
        r"\bshopping\b",
        r"\bgame\b",
        r"诗",
        r"歌词",
        r"笑话",
        r"故事",
        r"生日",
        r"贺卡",
        r"电影",
        r"影片",
        r"小说",
        r"菜谱",
        r"食谱",
        r"做菜",
        r"餐厅",
        r"酒店",
        r"旅游",
        r"旅行",
        r"健身",
        r"减肥",
        r"天气",
        r"股票",
        r"排序",
        r"(用|写).{0,6}(python|java|c\+\+|代码|程序|函数|脚本)",
        r"翻译",
        r"笔记本电脑",
        r"内存条",
        r"手机",
        r"壁纸",
        r"桌面",
        r"海盗",
        r"礼物",
        r"星座",
        r"购买",
        r"买",
        r"游戏",
    ]
)


EVIDENCE = _any(
    [
        r"\bbetter than\b",
        r"\bworse than\b",
        r"\boutperform",
        r"\bbeats?\b",
        r"\bmore (effective|accurate|robust|efficient)\b",
        r"\b(is|are) .{1,60} (better|worse|enough|worth|reliable|faithful|effective)\b",
        r"\bdoes .{1,80} (help|hurt|improve|work|matter|raise|increase|reduce|lower)\b",
        r"\bdo .{1,80} (help|hurt|improve|work|matter|follow|remember|keep|raise|increase)\b",
        r"\bcan .{1,80} (replace|evaluate|judge|simulate|infer|be inferred|match)\b",
        r"\b(does|do|can|will) .{1,80} make .{1,60}\b(less|more|worse|better)\b",  # "make it less safe?"
        r"\bis it (true|the case)\b",
        r"\bwhat does the evidence\b",
        r"\b(solid|any|real) evidence\b",
        r"\bworth it\b",
        r"\bis it worth\b",
        r"\b(can|should) i (really )?trust\b",
        r"\breliabl[ey]\b",
        r"\bhype\b",
        r"\b(actually|really) (work|help|make|improve|better)",
        r"\bwhat is the difference between\b",
        r"更好|更差|优于|胜过|是否|能否|能不能|会不会|有没有用|有效吗|靠谱|可靠吗|区别|差异|不同之处|实证|值不值得|值得吗",
    ]
)
# "Is A better than B": a verdict, though the question also says "vs".
EVIDENCE_ONLY = _any([r"\bbetter than\b", r"\bworse than\b", r"\boutperform", r"更好|更差|优于"])
RECOMMEND = _any(
    [
        r"\bwhich (benchmark|dataset|method|approach|metric|model|technique|evaluation)s? (should|would|do you|to)\b",
        r"\bwhat (benchmark|dataset|method|approach|metric)s? should\b",
        r"\bshould i use\b",
        r"\bwhat should i use\b",
        r"\brecommend(?!er|ation)",  # "LLM recommenders" name a topic, not a request for advice
        r"\bbest (benchmark|dataset|method|approach|way) (to|for)\b",
        r"\bif i (only )?have\b",
        r"\bneed an? (benchmark|dataset|method|metric)\b",
        r"\bwhich .{1,40} should i\b",
        r"\bwhat (method|approach) should\b",
        r"\bi only have time for\b",
        r"用哪个|该用|应该用|(给我|请|能否|可以|你)推荐|推荐(一下|几|一些|些|哪|什么)|选哪|怎么选|如何选择|选什么|有什么合适的|有哪些现成的|用什么方法|该读哪",
    ]
)
OVERVIEW = _any(
    [
        r"\bmain (\w+ )?(families|approaches|methods|lines of work|directions|paradigms)\b",
        r"\bfamilies of (methods|approaches)\b",
        r"\bwhat (approaches|methods|techniques) (exist|are there)\b",
        r"\boverview of\b",
        r"\blandscape\b",
        r"\bhow (do|can) (we|you|one|people) personali[sz]e\b",
        r"\bways to personali[sz]e\b",
        r"\b(a |the )?map of\b",
        r"\b(what are the|my) options\b",
        r"\bhow (do|are) .{1,50} (get )?built\b",
        r"\bhow do people\b",
        r"(主要|有哪些|几类|哪几种|哪几条|大致)(的)?(研究)?(方法|路线|技术路线|思路|范式|做法)",
        r"(概览|全景|综述一下|梳理|代表性做法|哪几类做法|技术路线)",
    ]
)
RECENT = _any(
    [
        r"\blatest\b",
        r"\bnewest\b",
        r"\bmost recent\b",
        r"\brecent(ly)?\b",
        r"\bwhat('s| is) new\b",
        r"\bnew (work|papers?|results|developments|in)\b",
        r"\b20(25|26|27)\b",
        r"\bthis year\b",
        r"最新|最近|新进展|今年|近期",
    ]
)


BENCHMARK_WORDS = _any([r"\bbenchmarks?\b", r"\bdatasets?\b", r"\bevaluat", r"基准|数据集|评测|测评"])


HOW = _any([r"^\s*how (do|does|is|are|can|should)\b", r"怎么(做|实现|处理)|如何(做|实现|处理)"])


def synthesis_intent(question: str) -> str | None:
    """The plan a question needs from the field's synthesis (claims, overviews), before the paper-level plans:
    recent work, a difference (a claim may state it), a recommendation, evidence (is A better than B), an overview
    of approaches; None otherwise."""
    if RECENT.search(question):
        return "recent"
    if RELATED_WORK.search(question):
        return "overview"
    if RECOMMEND.search(question):
        return "recommend"
    if OVERVIEW.search(question):  # "the main design families and how they differ": the families answer it
        return "overview"
    if DIFFERENCE.search(question) and not EVIDENCE_ONLY.search(question):
        return "difference"
    if HOW.search(question) and not COMPARE.search(question):
        return "overview"  # "how do X do Y" asks for the approaches, not a yes or no
    if EVIDENCE.search(question):
        return "evidence"
    if OVERVIEW.search(question):
        return "overview"
    return None


# A related-work paragraph for the asker's paper: the topic's lines of work, argued, not one paper's card.
RELATED_WORK = _any([r"\brelated[- ]work\b", r"相关工作", r"\bliterature review\b", r"文献综述"])
# A follow-up that asks for other work than the paper under discussion: that paper is context, not the subject.
OTHER_WORK = _any(
    [
        r"\bhas anyone\b",
        r"\bdid anyone\b",
        r"\bis there (a |an |any )?(similar|other|comparable|better)\b",
        r"\b(any|other) (follow-?ups?|successors?|later work)\b",
        r"\bwhat came (after|next)\b",
        r"\b(improved|built) (on|upon)\b",
        r"\bsince then\b",
        r"有没有人|后续(工作|研究)|之后(的|有)?(工作|研究)|改进了?它|类似的(方法|工作)|其他(方法|工作)",
    ]
)
# What a definition question asks to have defined: "what is persona drift?" -> "persona drift".
ASKED = [
    re.compile(r"\bwhat(?:'s| is| are) ['\"‘“]([^'\"’”]{2,60})['\"’”]", re.I),  # a quoted phrase is what is asked
    re.compile(r"[“\"]([^”\"]{2,30})[”\"](?:（[^）]*）)?\s*(?:指的是什么|是什么意思|是什么)"),
    re.compile(r"^\s*what (?:is|are) (?:a |an |the )?(.+?)\s*\??\s*$", re.I),
    re.compile(r"\bwhat does (.+?) mean\b", re.I),
    re.compile(r"\bdefine (.+?)(?:[,.?]|$)", re.I),
    re.compile(r"什么是(.+?)[？?。]?$"),
    re.compile(r"^(.+?)(?:这个概念|这个词)?(?:是什么意思|是什么|指的是什么|的定义|的含义)"),
]


def asked_phrase(question: str) -> str | None:
    """The phrase a definition question asks about, or None when it is not asked in one of these forms."""
    for pattern in ASKED:
        if match := pattern.search(question.strip()):
            return match.group(1).strip(" “”\"'‘’")
    return None


def intent(question: str, named_papers: int = 0, named_terms: int = 0) -> str:
    """The answer plan a question needs. Names resolved beforehand decide close calls: two named papers
    and no other cue is a comparison; one named paper is that paper's card."""
    if NEWCOMER.search(question):
        return "newcomer"
    if COMPARE.search(question) and (
        named_papers >= 2 or named_papers + named_terms >= 2 or MODEL_FAMILIES.search(question)
    ):
        return "compare"
    if OPEN_QUESTION.search(question):
        return "open_question"
    if DEFINITION.search(question) and named_terms and (not named_papers or re.search(r"['\"‘“”’]", question)):
        return "definition"  # a quoted name is a term asked about, though a paper shares it
    if RELATED_WORK.search(question):
        return "general"  # "from PersonaChat onward" names where the line starts, not the subject
    if named_papers == 1 and not re.search(r"\bpapers\b|\bworks\b|哪些|论文有", question, re.I):
        return "paper"  # one paper named (or carried from the last turn): its card answers the details
    if LIST.search(question):
        return "list"
    if COMPARE.search(question) and named_papers + named_terms >= 1:
        return "compare"
    if DEFINITION.search(question) and named_terms:
        return "definition"
    return "general"


def scope_override(question: str, named_papers: int, field_word: bool) -> bool | None:
    """True: in the field whatever BM25 says; False: out of it; None: let the fitted threshold decide.
    `field_word`: the question uses one of the field's own words (its `scope.yaml`, or a glossary name)."""
    if named_papers:
        return True
    research = bool(RESEARCH.search(question))
    if NEAR_MISS.search(question) and not research:
        return False
    if NEWCOMER.search(question) and (research or field_word or re.search(r"读|read", question, re.I)):
        return True
    if MODEL_FAMILIES.search(question) and field_word:
        return True
    if THIS_FIELD.search(question) or (research and field_word):
        return True
    if (LIST.search(question) or OPEN_QUESTION.search(question)) and (research or field_word):
        return True
    return None


YEAR = re.compile(r"(?<!\d)(20[12]\d)(?!\d)")


def asked_year(question: str) -> int | None:
    """The one year a question names ("What's new in 2026", "2026 年"); None for none, or for a range."""
    years = set(YEAR.findall(question))
    return int(years.pop()) if len(years) == 1 else None


# A recommendation between named options ("retrieval or a LoRA per user?"): a claim's verdict weighs them.
ALTERNATIVES = _any([r"\bor\b", r"\bvs\.?\b", r"\bversus\b", r"\bbetter than\b", r"还是", r"或者", r"或是"])
