"""An OpenCompass model class that scores options by loss (imported by eval/eval_plllm_hf.py in `.venv-eval`).

OpenCompass 0.5.4's chat-template model generates but has no `get_ppl`, and its base-model class drops
the chat template, which is how the tuned model was trained to read a question. This class keeps the chat
template for both: an option's score is the mean loss of the assistant's reply (the option) after the
user's turn, so the perplexity inferencer picks the option the model finds most likely as an answer.
"""

from __future__ import annotations

import numpy as np
import torch
from opencompass.models import HuggingFacewithChatTemplate
from opencompass.utils.prompt import PromptList

BATCH = 4  # shared parts scored in one forward pass (PPLInferencer hands over batches of its own size)


def _messages(prompt) -> list[dict[str, str]]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    roles = {"HUMAN": "user", "BOT": "assistant", "SYSTEM": "system"}
    messages: list[dict[str, str]] = []
    for item in prompt:
        role = roles[item["role"]]
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"] += "\n" + item["prompt"]
        elif item["prompt"] or role == "assistant":
            messages.append({"role": role, "content": item["prompt"]})
    return messages


class RenderedChat(str):
    """A chat as the text the model reads, keeping its turns: the inferencer wants strings, the loss wants turns."""

    messages: list[dict[str, str]]


class ChatModelWithLoss(HuggingFacewithChatTemplate):
    """Scores each option by the loss of its letter as the first token of the reply.

    The four options of a question share everything before the reply, so one forward pass of that shared
    part scores all four (the next-token distribution is cached): a question costs one pass, not four.
    """

    _next_token: dict[tuple[int, ...], object]

    def _render(self, prompt):
        if not prompt:
            return ""
        messages = _messages(prompt)
        text = RenderedChat(self.tokenizer.apply_chat_template(messages, tokenize=False))
        text.messages = messages
        return text

    def parse_template(self, prompt_template, mode: str):
        parsed = super().parse_template(prompt_template, mode)
        if mode != "ppl":
            return parsed
        if isinstance(parsed, list) and not isinstance(parsed, PromptList):  # a batch of prompts
            return [self._render(p) for p in parsed]
        return self._render(parsed)

    def _split(self, prompt) -> tuple[tuple[int, ...], int]:
        """Token ids before the reply (the user's turn and the assistant's header) and the reply's first token."""
        messages = getattr(prompt, "messages", None) or _messages(prompt)
        reply = messages[-1]["content"] if messages and messages[-1]["role"] == "assistant" else ""
        context = messages[:-1] if reply else messages
        head = self.tokenizer.apply_chat_template(context, add_generation_prompt=True, tokenize=False)
        head_ids = self.tokenizer(head, add_special_tokens=False)["input_ids"][-(self.max_seq_len - 1) :]
        reply_ids = self.tokenizer(reply, add_special_tokens=False)["input_ids"] or [self.tokenizer.eos_token_id]
        return tuple(head_ids), reply_ids[0]

    def get_ppl(self, inputs, mask_length=None):
        """The loss of each input's first reply token, as an array (the inferencer calls `.tolist()` on it)."""
        cache = self.__dict__.setdefault("_next_token", {})
        split = [self._split(prompt) for prompt in inputs]
        missing = list(dict.fromkeys(head for head, _ in split if head not in cache))
        if len(cache) + len(missing) > 4096:  # the options of a question come together: old entries are done
            cache.clear()
        for start in range(0, len(missing), BATCH):
            batch = missing[start : start + BATCH]
            width = max(len(ids) for ids in batch)
            pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            attention = torch.zeros_like(input_ids)
            for row, ids in enumerate(batch):  # right padding: each row's last real position predicts the reply
                input_ids[row, : len(ids)] = torch.tensor(ids)
                attention[row, : len(ids)] = 1
            last = torch.tensor([len(ids) - 1 for ids in batch])
            with torch.no_grad():
                logits = self._last_logits(input_ids.to(self.model.device), attention.to(self.model.device), last)
            for row, ids in enumerate(batch):
                cache[ids] = torch.log_softmax(logits[row].float(), -1).cpu()
        return np.array([-float(cache[head][token]) for head, token in split])

    def _last_logits(self, input_ids, attention, last):
        """Next-token logits at each row's last real position only: the output layer over a 49k vocabulary at
        every position would cost a fifth of the pass and a logits tensor thousands of times larger."""
        decoder, head = getattr(self.model, "base_model", None), self.model.get_output_embeddings()
        if decoder is None or decoder is self.model or head is None:
            logits = self.model(input_ids=input_ids, attention_mask=attention).logits
            return logits[torch.arange(len(last)), last]
        hidden = decoder(input_ids=input_ids, attention_mask=attention).last_hidden_state
        return head(hidden[torch.arange(len(last)), last.to(hidden.device)])

    def get_token_len(self, prompt) -> int:
        head, _ = self._split(prompt)
        return len(head) + 1
