"""Task types: one registry, :data:`TASKS`, filled from the modules of this package.

Every :class:`Task` subclass here with a ``type`` is a task type (``base`` holds the shared bases). Adding one is
one file: its loading, scoring, report columns and held-out parts live on the class, and ``load_dataset``,
``llembed eval --type``, the report and decontamination all read this registry.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from llembed.evaluation.data_files import Dataset
from llembed.evaluation.tasks.base import Task

_INFRASTRUCTURE = {"base"}


def _discover() -> dict[str, type[Task]]:
    found: dict[str, type[Task]] = {}
    for module_name in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _INFRASTRUCTURE):
        module = importlib.import_module(f"{__name__}.{module_name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Task) and cls.type and cls.__module__ == module.__name__:
                if cls.type in found:
                    raise RuntimeError(f"task type {cls.type!r} is defined twice ({module_name})")
                found[cls.type] = cls
    return found


TASKS: dict[str, type[Task]] = _discover()
TASK_TYPES: tuple[str, ...] = tuple(TASKS)


def make_task(dataset: Dataset) -> Task:
    return TASKS[dataset.type](dataset)


__all__ = ["TASKS", "TASK_TYPES", "Task", "make_task"]
