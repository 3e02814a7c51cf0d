"""The job layer's shape: services submit through a queue protocol of their own layer and
never load the job runner; every job kind is one entry of ``JOB_KINDS``."""

from __future__ import annotations

import subprocess
import sys

from registry.services.job_kinds import JOB_KINDS

_IMPORT_EVERY_SERVICE = """
import importlib, pkgutil, sys
import registry.services
for module in pkgutil.walk_packages(registry.services.__path__, "registry.services."):
    importlib.import_module(module.name)
print(sorted(name for name in sys.modules if name == "registry.jobs"
             or name.startswith("registry.jobs.") or name == "torch"))
"""


def test_importing_the_services_loads_neither_the_job_runner_nor_torch() -> None:
    # a fresh interpreter: this test process has long imported both
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_EVERY_SERVICE],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert done.stdout.strip() == "[]", done.stdout


def test_every_job_kind_is_registered_under_its_own_name_with_its_own_events() -> None:
    assert set(JOB_KINDS) >= {"compose", "export"}
    actions = []
    for name, kind in JOB_KINDS.items():
        assert kind.name == name
        events = kind.events
        actions += [events.submit, events.succeed, events.fail, events.cancel]
    assert len(actions) == len(set(actions)), actions
