"""Byte-level BPE tokenizer and chat template for the tiny scenes VLM.

Byte-level so that any text (JSON braces, user prompts, unicode) encodes without an unknown token;
a small vocabulary because the model is tiny and the language of its world is narrow.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

BOS = "<|start|>"
EOS = "<end_of_utterance>"
PAD = "<pad>"
IMAGE = "<image>"
FAKE_IMAGE = "<fake_token_around_image>"
GLOBAL_IMAGE = "<global-img>"
# The Idefics3 processor looks these up even with image splitting off (see the vLLM-on-CPU notes).
ROW_COL = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
SPECIAL_TOKENS = [PAD, BOS, EOS, IMAGE, FAKE_IMAGE, GLOBAL_IMAGE, *ROW_COL]

# One user turn holding [image, text]; `image` (transformers) and `image_url` (vLLM's OpenAI chat
# path) parts both become <image>, so both stacks build the same token sequence. The generation
# prompt ends in a newline: the GPT-2 split regex never merges a newline with the next word, so a
# response tokenised on its own (training) equals the continuation the model produces (inference).
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}System:{% elif message['role'] == 'user' %}User:"
    "{% else %}Assistant:\n{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] in ['image', 'image_url'] %}<image>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<end_of_utterance>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:\n{% endif %}"
)


def train_tokenizer(corpus: Iterable[str], vocab_size: int = 1536) -> PreTrainedTokenizerFast:
    """Train byte-level BPE on ``corpus`` and wrap it as a transformers tokenizer."""
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: no UNK ever
        show_progress=False,
    )
    core.train_from_iterator(corpus, trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        extra_special_tokens={"image_token": IMAGE},
        model_max_length=1024,
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok
