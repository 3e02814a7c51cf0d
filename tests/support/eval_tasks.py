"""What evaluation-job tests run on: a tiny Llama with a character tokenizer (built with
the ``tokenizers`` library, so lm-eval's HF backend loads it offline), a real PEFT
adapter on it, and a folder of custom lm-eval tasks over local JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.factories import TINY_LLAMA, build_lora_adapter, build_tiny_llama

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 .,?:'-+="
"""Every character the tasks use: one token each (with <unk>, <s>, </s>: 48 < vocab 128)."""
CHOICE_TASK = "tiny_arith"
GENERATE_TASK = "tiny_echo"
CHOICE_EXAMPLES = 24

CHOICE_YAML = f"""\
task: {CHOICE_TASK}
dataset_path: json
dataset_kwargs:
  data_files:
    test: arith.json
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}} answer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""
GENERATE_YAML = f"""\
task: {GENERATE_TASK}
dataset_path: json
dataset_kwargs:
  data_files:
    test: arith.json
test_split: test
output_type: generate_until
doc_to_text: "{{{{question}}}} answer:"
doc_to_target: "{{{{choices[0]}}}}"
generation_kwargs:
  until: ["?"]
  max_gen_toks: 3
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


def save_char_tokenizer(directory: Path) -> None:
    """A character-level tokenizer (``tokenizers`` WordLevel, one token per character)
    saved beside a model as ``tokenizer.json`` + ``tokenizer_config.json``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    vocab.update({char: index + 3 for index, char in enumerate(ALPHABET)})
    assert len(vocab) <= TINY_LLAMA["vocab_size"]
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fast.save_pretrained(str(directory))


def build_eval_models(root: Path) -> tuple[Path, Path]:
    """``(base, adapter)``: the tiny Llama with its tokenizer, and a LoRA adapter on it."""
    base = build_tiny_llama(root / "base")
    save_char_tokenizer(base)
    adapter = build_lora_adapter(base, root / "adapter", r=4, lora_alpha=8, seed=5)
    return base, adapter


def arithmetic_rows() -> list[dict[str, Any]]:
    """``CHOICE_EXAMPLES`` four-way questions; the first choice is the right one."""
    return [
        {
            "question": f"what is {a}+{b}?",
            "choices": [str(a + b), str(a + b + 1), str(a * b + 2), str(a + b + 3)],
            "answer": 0,
        }
        for a in range(6)
        for b in range(4)
    ]


def write_task_folder(folder: Path) -> Path:
    """Two custom tasks over one local JSON Lines file: a multiple-choice one
    (loglikelihood, ``acc``) and a generation one (``exact_match``)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = arithmetic_rows()
    (folder / "arith.json").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    (folder / "arith.yaml").write_text(CHOICE_YAML)
    (folder / "echo.yaml").write_text(GENERATE_YAML)
    return folder


def task_files_body(folder: Path) -> list[dict[str, str]]:
    """The folder as the REST API takes it (``task_files``)."""
    return [
        {"path": path.relative_to(folder).as_posix(), "content": path.read_text()}
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    ]
