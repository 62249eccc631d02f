# PLLM-Bench for OpenCompass: MCQ with CircularEval, open QA with key-point recall (and an LLM judge when
# PLRA_JUDGE_URL is set), attribution by arXiv id. `plra eval` writes the prepared files (with or without
# retrieved knowledge-base passages in the prompt) to $PLRA_EVAL_DATA/<variant>/ and lists the variants in
# PLRA_EVAL_VARIANTS. mmengine parses configs with lazy imports, so the standard library is reached through
# __import__.
from opencompass.datasets.custom import CircularCustomDataset, CircularOptionSimAccEvaluator, CustomDataset
from opencompass.datasets.generic import generic_llmjudge_postprocess
from opencompass.evaluator import GenericLLMEvaluator
from opencompass.models import OpenAISDK
from opencompass.openicl.icl_inferencer import GenInferencer
from opencompass.openicl.icl_prompt_template import PromptTemplate
from opencompass.openicl.icl_retriever import ZeroRetriever

from plra.toolchain.workers.oc_evaluators import AttributionEvaluator, KeyPointRecallEvaluator

data_root = __import__("os").environ.get("PLRA_EVAL_DATA", "reports/eval/data")
variants = __import__("os").environ.get("PLRA_EVAL_VARIANTS", "norag").split(",")
options = ["A", "B", "C", "D"]

mcq_prompt = "{question}\nA. {A}\nB. {B}\nC. {C}\nD. {D}\nAnswer with the letter of the correct option."
qa_prompt = "{question}"
attribution_prompt = "{question}\nName the paper and give its arXiv id."
judge_url = __import__("os").environ.get("PLRA_JUDGE_URL", "")
judge_tokenizer = __import__("os").environ.get("PLRA_EVAL_TOKENIZER", "models/smollm2-135m-instruct")
judge_prompt = (
    "You grade answers about research papers. Question: {question}\nReference answer: {ref_answer}\n"
    "Candidate answer: {prediction}\nIs the candidate correct and consistent with the reference? "
    "Reply with one letter: A (correct) or B (incorrect)."
)

datasets = []
for variant in variants:
    datasets.append(
        dict(
            abbr=f"plllm_mcq_{variant}",
            type=CircularCustomDataset,
            path=f"{data_root}/{variant}/mcq.jsonl",
            option_keys=options,
            answer_key="answer",
            reader_cfg=dict(input_columns=["question", "A", "B", "C", "D"], output_column="answer"),
            infer_cfg=dict(
                prompt_template=dict(
                    type=PromptTemplate,
                    template=dict(round=[dict(role="HUMAN", prompt=mcq_prompt), dict(role="BOT", prompt="{answer}")]),
                ),
                retriever=dict(type=ZeroRetriever),
                inferencer=dict(type=GenInferencer),
            ),
            eval_cfg=dict(evaluator=dict(type=CircularOptionSimAccEvaluator, options=options), pred_role="BOT"),
        )
    )
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
    datasets.append(
        dict(
            abbr=f"plllm_attribution_{variant}",
            type=CustomDataset,
            path=f"{data_root}/{variant}/attribution.jsonl",
            reader_cfg=dict(input_columns=["question"], output_column="reference"),
            infer_cfg=dict(
                prompt_template=dict(
                    type=PromptTemplate, template=dict(round=[dict(role="HUMAN", prompt=attribution_prompt)])
                ),
                retriever=dict(type=ZeroRetriever),
                inferencer=dict(type=GenInferencer),
            ),
            eval_cfg=dict(evaluator=dict(type=AttributionEvaluator), pred_role="BOT"),
        )
    )
