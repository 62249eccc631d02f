# PLLM-Bench for OpenCompass. Choice sets (MCQ, and attribution: which paper says this?) are scored by loss
# with the perplexity inferencer (the option whose reply the model finds most likely), each question in
# every rotation of its options (CircularEval; `plra eval` writes the rotations as rows with qid and
# rotation); served models (no loss over the API) answer them by generation instead. Open QA: generation
# and key-point recall (and an LLM judge when PLRA_JUDGE_URL is set). `plra eval` writes the prepared files
# (with or without retrieved knowledge-base passages in the prompt) to $PLRA_EVAL_DATA/<variant>/, lists
# the variants in PLRA_EVAL_VARIANTS and the scoring in PLRA_EVAL_SCORING (loss or generate). mmengine
# parses configs with lazy imports, so the standard library is reached through __import__.
from opencompass.datasets.custom import CustomDataset, OptionSimAccEvaluator
from opencompass.datasets.generic import generic_llmjudge_postprocess
from opencompass.evaluator import GenericLLMEvaluator
from opencompass.models import OpenAISDK
from opencompass.openicl.icl_evaluator import AccEvaluator
from opencompass.openicl.icl_inferencer import GenInferencer, PPLInferencer
from opencompass.openicl.icl_prompt_template import PromptTemplate
from opencompass.openicl.icl_retriever import ZeroRetriever

from plra.toolchain.workers.oc_evaluators import KeyPointRecallEvaluator

data_root = __import__("os").environ.get("PLRA_EVAL_DATA", "reports/eval/data")
variants = __import__("os").environ.get("PLRA_EVAL_VARIANTS", "norag").split(",")
by_loss = __import__("os").environ.get("PLRA_EVAL_SCORING", "loss") == "loss"
options = ["A", "B", "C", "D"]

choice_prompt = "{question}\nA. {A}\nB. {B}\nC. {C}\nD. {D}\nAnswer with the letter of the correct option."
qa_prompt = "{question}"
judge_url = __import__("os").environ.get("PLRA_JUDGE_URL", "")
judge_tokenizer = __import__("os").environ.get("PLRA_EVAL_TOKENIZER", "models/smollm2-135m-instruct")
judge_prompt = (
    "You grade answers about research papers. Question: {question}\nReference answer: {ref_answer}\n"
    "Candidate answer: {prediction}\nIs the candidate correct and consistent with the reference? "
    "Reply with one letter: A (correct) or B (incorrect)."
)


def choice_set(name, variant):
    """A four-option set: by loss, the option whose letter the model finds most likely as its reply."""
    if by_loss:
        template = {
            o: dict(round=[dict(role="HUMAN", prompt=choice_prompt), dict(role="BOT", prompt=o)]) for o in options
        }
        inferencer, evaluator = dict(type=PPLInferencer), dict(type=AccEvaluator)
    else:
        template = dict(round=[dict(role="HUMAN", prompt=choice_prompt), dict(role="BOT", prompt="{answer}")])
        inferencer, evaluator = dict(type=GenInferencer), dict(type=OptionSimAccEvaluator, options=options)
    return dict(
        abbr=f"plllm_{name}_{variant}",
        type=CustomDataset,
        path=f"{data_root}/{variant}/{name}.jsonl",
        reader_cfg=dict(input_columns=["question", "A", "B", "C", "D"], output_column="answer"),
        infer_cfg=dict(
            prompt_template=dict(type=PromptTemplate, template=template),
            retriever=dict(type=ZeroRetriever),
            inferencer=inferencer,
        ),
        eval_cfg=dict(evaluator=evaluator, pred_role="BOT"),
    )


datasets = []
for variant in variants:
    datasets.append(choice_set("mcq", variant))
    datasets.append(choice_set("attribution", variant))
    datasets.append(
        dict(
            abbr=f"plllm_qa_{variant}",
            type=CustomDataset,
            path=f"{data_root}/{variant}/qa.jsonl",
            reader_cfg=dict(input_columns=["question"], output_column="key_points"),
            infer_cfg=dict(
                prompt_template=dict(type=PromptTemplate, template=dict(round=[dict(role="HUMAN", prompt=qa_prompt)])),
                retriever=dict(type=ZeroRetriever),
                inferencer=dict(type=GenInferencer),
            ),
            eval_cfg=dict(evaluator=dict(type=KeyPointRecallEvaluator), pred_role="BOT"),
        )
    )
    if judge_url:  # the same open questions, graded by an LLM judge (GenericLLMEvaluator)
        qa_reader = dict(input_columns=["question"], output_column="ref_answer")
        datasets.append(
            dict(
                abbr=f"plllm_qajudge_{variant}",
                type=CustomDataset,
                path=f"{data_root}/{variant}/qa.jsonl",
                reader_cfg=qa_reader,
                infer_cfg=dict(
                    prompt_template=dict(
                        type=PromptTemplate, template=dict(round=[dict(role="HUMAN", prompt=qa_prompt)])
                    ),
                    retriever=dict(type=ZeroRetriever),
                    inferencer=dict(type=GenInferencer),
                ),
                eval_cfg=dict(
                    evaluator=dict(
                        type=GenericLLMEvaluator,
                        prompt_template=dict(
                            type=PromptTemplate, template=dict(round=[dict(role="HUMAN", prompt=judge_prompt)])
                        ),
                        dataset_cfg=dict(
                            type=CustomDataset, path=f"{data_root}/{variant}/qa.jsonl", reader_cfg=qa_reader
                        ),
                        judge_cfg=dict(
                            type=OpenAISDK,
                            abbr="judge",
                            path=__import__("os").environ.get("PLRA_JUDGE_MODEL", "plra"),
                            key="EMPTY",
                            openai_api_base=judge_url,
                            tokenizer_path=__import__("os").environ.get(
                                "PLRA_EVAL_TOKENIZER", "models/smollm2-135m-instruct"
                            ),
                            temperature=0.0,
                            max_out_len=8,
                            max_seq_len=4096,
                            batch_size=4,
                            query_per_second=8,
                        ),
                        dict_postprocessor=dict(type=generic_llmjudge_postprocess),
                    ),
                    pred_role="BOT",
                ),
            )
        )
