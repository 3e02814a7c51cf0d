"""API schemas of evaluation jobs (``POST .../versions/{ref}/evaluations``) and of the
``evaluate`` list of a composition recipe."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from registry.schemas.base import Schema

MAX_TASKS = 64
MAX_TASK_FILES = 256


class EvalTaskFile(Schema):
    path: str = Field(max_length=512, description="its path in the task folder: arith.yaml")
    content: str = Field(description="the file's text (task YAML, JSON or JSONL data)")


class EvaluationStep(Schema):
    """One evaluation: what ``lorry eval run`` takes, and an entry of a recipe's ``evaluate``."""

    tasks: list[str] = Field(
        min_length=1, max_length=MAX_TASKS, description="lm-eval task (or group) names"
    )
    base: str | None = Field(
        default=None,
        max_length=300,
        description="the base model as NAMESPACE/NAME[@REF] (default: the adapter's linked base)",
    )
    tasks_from: str | None = Field(
        default=None,
        max_length=300,
        description="a registry version NAMESPACE/NAME[@REF] whose eval_tasks/ folder holds the "
        "task YAML and data",
    )
    limit: int | None = Field(default=None, ge=1, description="examples per task (default: all)")
    num_fewshot: int | None = Field(default=None, ge=0, le=64)
    queue: Literal["gpu", "cpu", "any"] = Field(
        default="any", description="gpu runs on CUDA; cpu and any on the CPU"
    )
    promote: str | None = Field(
        default=None,
        max_length=200,
        description="an alias to point at the version once its results are recorded; the "
        "alias's gates judge them",
    )


class EvalRunRequest(EvaluationStep):
    task_files: list[EvalTaskFile] = Field(
        default_factory=list,
        max_length=MAX_TASK_FILES,
        description="the task folder uploaded with the job (instead of tasks_from)",
    )
    message: str | None = Field(
        default=None, max_length=10_000, description="the reason a promotion records"
    )
