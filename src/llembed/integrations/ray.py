"""Joining or starting Ray, the same way for ``embed-corpus`` and ``serve --ray-replicas``."""

from __future__ import annotations

import logging
import os


def ensure_ray(address: str | None = None, num_cpus: int | None = None):
    """Use this process's Ray if it has one; else join the cluster at ``address``, or start a local Ray of
    ``num_cpus`` CPUs (default: this machine's). Usage statistics stay off unless the user turned them on."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        ray.init(
            address=address,
            num_cpus=None if address else (num_cpus or os.cpu_count()),
            include_dashboard=False,
            logging_level=logging.WARNING,
        )
    return ray
