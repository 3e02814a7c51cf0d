"""The program an ``eval`` job runs in a child process: lm-evaluation-harness on local files.

``python -m registry.services.job_kinds.lm_eval_run REQUEST OUT`` reads the request
(JSON: ``base``, ``adapter``, ``tasks_dir``, ``tasks``, ``limit``, ``num_fewshot``,
``device``, ``batch_size``), runs ``lm_eval.simple_evaluate`` with the HF backend (the
base model directory as ``pretrained``, the adapter directory as ``peft``) over the
tasks that ``TaskManager(include_path=tasks_dir)`` finds, and writes the results
document as lm-eval writes it to ``OUT``. The parent starts it with the task directory
as its working directory (task YAML names its ``data_files`` relative to it) and with
``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` set, which those libraries read at import:
a child process is where they take effect, and a cancelled job's run is killed whole.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

logger = logging.getLogger("lorry.eval")

UNKNOWN_TASK_EXIT = 3
"""Exit status when a named task is not in the task directory."""


def run(request: dict[str, Any]) -> dict[str, Any]:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=request["tasks_dir"], include_defaults=False)
    missing = [task for task in request["tasks"] if task not in manager.all_tasks]
    if missing:
        raise LookupError(
            f"task(s) {', '.join(missing)} not found among the task directory's tasks: "
            f"{', '.join(sorted(manager.all_tasks)) or 'none'}"
        )
    model_args = {"pretrained": request["base"], "peft": request["adapter"], "dtype": "float32"}
    results = simple_evaluate(
        model="hf",
        model_args=model_args,
        tasks=list(request["tasks"]),
        num_fewshot=request.get("num_fewshot"),
        batch_size=request.get("batch_size") or 1,
        device=request["device"],
        limit=request.get("limit"),
        task_manager=manager,
        log_samples=False,
    )
    if results is None:
        raise RuntimeError("lm-eval returned no results")
    return dict(results)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING)
    request = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    try:
        results = run(request)
    except LookupError as exc:
        sys.stderr.write(f"{exc}\n")
        return UNKNOWN_TASK_EXIT
    from lm_eval.utils import handle_non_serializable

    text = json.dumps(results, indent=2, default=handle_non_serializable, ensure_ascii=False)
    Path(argv[1]).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
