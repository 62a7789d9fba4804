"""Two processes under torchrun (gloo) train exactly as one process holding the whole batch."""

import os
import socket
import subprocess
import sys
import textwrap

import torch

SCRIPT = textwrap.dedent(
    """
    import sys
    from llembed.training import TrainConfig, Trainer

    model, data, out, chunk = sys.argv[1:5]
    config = TrainConfig(
        data=[data], output_dir=out, recipe={"model": model, "prompt": "prompteol", "pooling": "mean"},
        batch_size=8, chunk_size=None if chunk == "none" else int(chunk), max_steps=3, save_every=3,
        learning_rate=1e-3, warmup_steps=0, lora={"r": 4, "alpha": 8, "dropout": 0.0}, seed=3,
        bf16="false",  # exact equality is fp32 math: bf16 autocast rounds differently per chunk and per process
    )
    Trainer(config).train()
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _final_state(out):
    return torch.load(out / "checkpoints" / "step-000003" / "state.pt", weights_only=False)


def test_two_processes_with_gathered_negatives_equal_one(tiny_model_dirs, snli_slice, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT, encoding="utf-8")
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    model = str(tiny_model_dirs["llama"])
    single = subprocess.run(
        [sys.executable, str(script), model, str(snli_slice), str(tmp_path / "one"), "none"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
    ]
    two = subprocess.run(
        [*torchrun, str(script), model, str(snli_slice), str(tmp_path / "two"), "2"],  # + GradCache chunks of 2
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    one_state, two_state = _final_state(tmp_path / "one"), _final_state(tmp_path / "two")
    assert [e["loss"] for e in two_state["log"]] == [pytest_approx(e["loss"]) for e in one_state["log"]]
    for name, value in one_state["trainable"].items():
        assert torch.allclose(value, two_state["trainable"][name], atol=1e-5), name


def pytest_approx(value):
    import pytest

    return pytest.approx(value, abs=1e-5)
