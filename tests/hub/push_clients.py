"""Run as a script with HF_ENDPOINT pointed at Lorry: every trainer-side client pushes.

``python -m tests.hub.push_clients WORKDIR``: builds a tiny Llama with a tokenizer, then
pushes with transformers (model and tokenizer), PEFT, ``Trainer(push_to_hub=True)`` (with
checkpoint pushes) and TRL's ``SFTTrainer``; loads each result back through the Hub API
and prints one JSON line with what the test checks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, cast

import torch
from huggingface_hub import CommitInfo, HfApi, hf_hub_download
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    Trainer,
    TrainingArguments,
)

from tests.export.builders import SENTENCES, build_tiny_model

CHAT = "acme/tiny-chat"
LORA = "acme/chat-lora"
TRAINED = "acme/trained"
SFT = "acme/sft-lora"


def _oid(pushed: object) -> str:
    """The commit id of what a ``push_to_hub`` returned (a ``CommitInfo``, typed as str)."""
    return cast(CommitInfo, pushed).oid


class _Texts(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    def __init__(self, tokenizer: Any) -> None:
        self.rows = [
            tokenizer(text, return_tensors="pt")["input_ids"][0][:16] for text in SENTENCES
        ]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ids = self.rows[index % len(self.rows)]
        ids = torch.nn.functional.pad(ids, (0, 16 - len(ids)), value=1)
        return {"input_ids": ids, "labels": ids}


def _lora() -> LoraConfig:
    return LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )


def _push_model(base: Path) -> dict[str, Any]:
    model = AutoModelForCausalLM.from_pretrained(base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model_commit = _oid(model.push_to_hub(CHAT, commit_message="tiny chat model"))
    tokenizer_commit = _oid(tokenizer.push_to_hub(CHAT, commit_message="its tokenizer"))
    reloaded = AutoModelForCausalLM.from_pretrained(CHAT, revision=tokenizer_commit)
    same = all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), reloaded.state_dict().values(), strict=True)
    )
    tokens = AutoTokenizer.from_pretrained(CHAT, revision="2")(SENTENCES[0])["input_ids"]
    return {
        "model_commit": model_commit,
        "tokenizer_commit": tokenizer_commit,
        "model_reloads_equal": same,
        "tokenizer_reloads_equal": tokens == tokenizer(SENTENCES[0])["input_ids"],
    }


def _push_adapter(base: Path, work: Path) -> dict[str, Any]:
    torch.manual_seed(3)
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), _lora())
    commit = _oid(peft_model.push_to_hub(LORA, commit_message="lora on tiny chat"))
    peft_model.save_pretrained(str(work / "lora"))
    HfApi().create_branch(LORA, branch="candidate")
    local = (work / "lora" / "adapter_model.safetensors").read_bytes()
    pulled = {
        revision: Path(
            hf_hub_download(LORA, "adapter_model.safetensors", revision=revision)
        ).read_bytes()
        == local
        for revision in (commit, "candidate", "1")
    }
    loaded = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base), LORA, revision="candidate"
    )
    ids = torch.tensor([[0, 5, 9, 12]])
    with torch.no_grad():
        diff = (loaded(ids).logits - peft_model(ids).logits).abs().max().item()
    return {
        "adapter_commit": commit,
        "adapter_pulls_equal": pulled,
        "adapter_logits_diff": diff,
    }


def _train(base: Path, work: Path) -> dict[str, Any]:
    tokenizer = AutoTokenizer.from_pretrained(base)
    args = TrainingArguments(
        output_dir=str(work / "trained"),
        max_steps=4,
        save_steps=2,
        per_device_train_batch_size=2,
        report_to=[],
        use_cpu=True,
        push_to_hub=True,
        hub_model_id=TRAINED,
        hub_strategy="checkpoint",
        logging_steps=2,
    )
    model = AutoModelForCausalLM.from_pretrained(base)
    trainer = Trainer(model=model, args=args, train_dataset=_Texts(tokenizer))
    trainer.train()
    final = trainer.push_to_hub(commit_message="end of training")
    weights = (work / "trained" / "model.safetensors").read_bytes()
    pulled = Path(hf_hub_download(TRAINED, "model.safetensors", revision=final.oid)).read_bytes()
    return {"trained_commit": final.oid, "trained_weights_equal": pulled == weights}


def _sft(base: Path, work: Path) -> dict[str, Any]:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.pad_token = tokenizer.eos_token
    config = SFTConfig(
        output_dir=str(work / "sft"),
        max_steps=2,
        save_steps=2,
        per_device_train_batch_size=2,
        report_to=[],
        use_cpu=True,
        push_to_hub=True,
        hub_model_id=SFT,
        max_length=32,
        logging_steps=1,
    )
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(base),
        args=config,
        train_dataset=Dataset.from_dict({"text": SENTENCES}),
        processing_class=tokenizer,
        peft_config=_lora(),
    )
    trainer.train()
    final = trainer.push_to_hub(commit_message="sft done")
    local = (work / "sft" / "adapter_model.safetensors").read_bytes()
    pulled = Path(hf_hub_download(SFT, "adapter_model.safetensors", revision=final.oid))
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), SFT, revision=final.oid)
    return {"sft_commit": final.oid, "sft_weights_equal": pulled.read_bytes() == local}


def main(work: Path) -> None:
    base = build_tiny_model(work / "base")
    results = {
        **_push_model(base),
        **_push_adapter(base, work),
        **_train(base, work),
        **_sft(base, work),
    }
    print(json.dumps(results))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
