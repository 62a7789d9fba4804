"""Freed activations stay in the process (glibc): checked in fresh interpreters, with and without the setting."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="tunes glibc's malloc"
)

PROBE = """
import numpy as np
from llembed.allocator import keep_freed_memory
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
applied = keep_freed_memory()
block = np.ones(24 << 20, dtype=np.uint8)  # 24 MiB, every page touched, as a batch's activations are
held = rss_mb()
del block
print(applied, round(held - rss_mb()))
"""


def _probe(**env: str) -> tuple[bool, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env={**os.environ, **env}, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0] == "True", int(out[1])


def test_a_freed_block_stays_mapped_for_the_next_batch():
    applied, released_mb = _probe()
    assert applied and released_mb < 4  # kept: the next batch reuses these pages


def test_the_setting_can_be_left_off_and_glibc_then_returns_the_block():
    applied, released_mb = _probe(LLEMBED_KEEP_FREED_MEMORY="0")
    assert not applied and released_mb >= 20  # glibc's default: the 24 MiB go back to the OS on free
