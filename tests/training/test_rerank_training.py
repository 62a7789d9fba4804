"""Reranker training: the two losses by hand, ``Reranker.forward`` against its inference scores, and LoRA runs on
real SNLI triplets (contradiction = the hard negative) that learn, resume exactly and load as a reranker."""

from __future__ import annotations

import json
import math

import pytest
import torch

from llembed import Recipe, Reranker
from llembed.errors import InputError
from llembed.training import Trainer
from llembed.training.losses import ListwiseRerankLoss, PointwiseRerankLoss, RerankDistillationLoss

from .conftest import write_jsonl
from .test_trainer import Crash, CrashingTrainer, _adapter_weights


def test_listwise_and_pointwise_losses_by_hand():
    scores = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]])
    listwise = [-(s[0] - math.log(sum(math.exp(v) for v in s))) for s in scores.tolist()]
    assert float(ListwiseRerankLoss()(scores)) == pytest.approx(sum(listwise) / 2, abs=1e-6)
    assert float(ListwiseRerankLoss(temperature=0.5)(scores)) == pytest.approx(
        float(ListwiseRerankLoss()(scores / 0.5)), abs=1e-6
    )

    def bce(score: float, target: float) -> float:
        p = 1 / (1 + math.exp(-score))
        return -(target * math.log(p) + (1 - target) * math.log(1 - p))

    pointwise = [bce(v, 1.0 if j == 0 else 0.0) for row in scores.tolist() for j, v in enumerate(row)]
    assert float(PointwiseRerankLoss()(scores)) == pytest.approx(sum(pointwise) / 6, abs=1e-6)
    with pytest.raises(ValueError, match="1 \\+ negatives"):
        ListwiseRerankLoss()(torch.zeros(3, 1))


def test_rerank_distillation_by_hand():
    scores = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]])
    teacher = torch.tensor([[0.9, 0.7, 0.1], [0.2, 0.8, 0.5]])

    def kl(student_row, teacher_row, temperature):
        p = [math.exp(t / temperature) for t in teacher_row]
        p = [v / sum(p) for v in p]
        log_q = [s - math.log(sum(math.exp(v) for v in student_row)) for s in student_row]
        return sum(pi * (math.log(pi) - lq) for pi, lq in zip(p, log_q, strict=True))

    for temperature in (1.0, 0.05):
        expected = sum(kl(s, t, temperature) for s, t in zip(scores.tolist(), teacher.tolist(), strict=True)) / 2
        assert float(RerankDistillationLoss(temperature)(scores, teacher)) == pytest.approx(expected, abs=1e-5)
    assert float(RerankDistillationLoss()(teacher.log(), teacher.log())) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="teacher scores for"):
        RerankDistillationLoss()(scores, teacher[:, :2])


def test_forward_with_autograd_equals_the_inference_scores(tiny_backbones):
    reranker = Reranker(tiny_backbones["llama"], Recipe(layer=3))
    queries = ["Who plays guitar?", "Do markets fall?"]
    groups = [["A man plays a guitar.", "Cats sleep."], ["Stocks fell sharply.", "A dog runs on the beach."]]
    scores = reranker.forward(queries, groups, task="Find it")
    assert scores.shape == (2, 2) and scores.requires_grad
    expected = [reranker.score(q, g, task="Find it") for q, g in zip(queries, groups, strict=True)]
    assert scores.detach().tolist() == [pytest.approx(row, abs=1e-4) for row in expected]


def _rerank_config(tiny_config, **changes):
    recipe = {"model": tiny_config().recipe["model"], "rerank_prompt": "plain", "dtype": "float32"}
    return tiny_config(objective="rerank", recipe=recipe, max_length=160, **changes)


@pytest.mark.parametrize(("loss", "separable", "learning_rate"), [("listwise", False, 3e-3), ("pointwise", True, 1e-2)])
def test_a_rerank_run_learns_and_loads_as_a_reranker(tiny_config, snli_slice, tmp_path, loss, separable, learning_rate):
    """Every step sees the same 16 SNLI triplets, so the loss must fall: the listwise loss learns to put entailments
    above contradictions. The pointwise loss learns slower from a random model, so it gets a separable version of
    the same rows (the positive is the query itself, the negative one fixed sentence) that any working loop learns."""
    rows = [json.loads(line) for line in snli_slice.read_text(encoding="utf-8").splitlines()[:16]]
    if separable:
        rows = [{"query": r["query"], "positive": r["query"], "negatives": [rows[0]["negatives"][0]]} for r in rows]
    data = write_jsonl(tmp_path / "sixteen.jsonl", rows)
    settings = {"rerank_loss": loss, "max_steps": 12, "learning_rate": learning_rate, "batch_size": 16}
    settings |= {"warmup_steps": 0, "chunk_size": 5, "lora": {"r": 4, "alpha": 8, "dropout": 0.0}}
    config = _rerank_config(tiny_config, data=[str(data)], **settings)
    trainer = Trainer(config)
    result = trainer.train()
    assert sum(result.losses[-3:]) / 3 < 0.8 * result.losses[0]
    tuned = Reranker.from_pretrained(result.output_dir, dtype="float32")
    assert tuned.recipe.adapter is not None and tuned.prompt.name == "plain"
    pair = ("Two women are embracing.", ["Two women hug.", "The men are fighting."])
    assert tuned.score(*pair) == pytest.approx(trainer.reranker.score(*pair), abs=1e-4)


def test_a_likelihood_rerank_run_learns_through_the_query_likelihood(tiny_config, snli_slice, tmp_path):
    """The listwise loss over likelihood scores (the query's log-probability gain after each candidate) trains the
    LoRA through the LM head: the same 8 triplets every step, so the loss must fall."""
    rows = [json.loads(line) for line in snli_slice.read_text(encoding="utf-8").splitlines()[:8]]
    data = write_jsonl(tmp_path / "eight.jsonl", rows)
    config = _rerank_config(tiny_config, data=[str(data)], max_steps=8, learning_rate=1e-2, batch_size=8,
                            warmup_steps=0, lora={"r": 4, "alpha": 8, "dropout": 0.0})  # fmt: skip
    config.recipe["rerank_prompt"] = "likelihood"
    trainer = Trainer(config)
    assert trainer.reranker.likelihood
    result = trainer.train()
    assert sum(result.losses[-3:]) / 3 < 0.85 * result.losses[0]
    tuned = Reranker.from_pretrained(result.output_dir, dtype="float32")
    assert tuned.prompt.name == "likelihood"
    pair = ("Two women are embracing.", ["Two women hug.", "The men are fighting."])
    assert tuned.score(*pair) == pytest.approx(trainer.reranker.score(*pair), abs=1e-4)


def test_a_rerank_run_resumes_where_it_crashed(tiny_config, tmp_path):
    whole = Trainer(_rerank_config(tiny_config, output_dir=str(tmp_path / "whole"), chunk_size=3))
    expected = whole.train().losses
    crashed = CrashingTrainer(_rerank_config(tiny_config, output_dir=str(tmp_path / "crashed"), chunk_size=3))
    with pytest.raises(Crash):
        crashed.train()
    resumed = Trainer(_rerank_config(tiny_config, output_dir=str(tmp_path / "crashed"), chunk_size=3))
    assert resumed.train(resume=True).losses == pytest.approx(expected, abs=1e-6)
    a, b = _adapter_weights(whole), _adapter_weights(resumed)
    assert all(torch.allclose(a[n], b[n], atol=1e-7) for n in a)


def test_chunks_give_the_gradients_of_one_pass(tiny_config, tmp_path):
    grads = []
    for chunk_size in (None, 3):
        trainer = Trainer(_rerank_config(tiny_config, output_dir=str(tmp_path / f"c{chunk_size}"),
                                         chunk_size=chunk_size, lora={"r": 4, "alpha": 8, "dropout": 0.0}))  # fmt: skip
        batch = next(iter(trainer.batches.from_step(0)))[1]
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer._rerank_step(batch)
        grads.append({n: p.grad.clone() for n, p in trainer.named_parameters if p.grad is not None})
    assert grads[0] and all(torch.allclose(grads[0][n], grads[1][n], atol=1e-6) for n in grads[0])


def test_rerank_training_needs_negatives(tiny_config, tmp_path):
    data = write_jsonl(tmp_path / "pairs.jsonl", [{"query": "a b", "positive": "a b c"}] * 8)
    with pytest.raises(InputError, match="mine-negatives"):
        Trainer(_rerank_config(tiny_config, data=[str(data)]))


def test_score_distillation_adds_the_teachers_order_to_the_rerank_loss(tiny_config, snli_slice, tmp_path):
    """The step's loss is the listwise loss plus the weighted KL to the teacher's scores, computed by hand from the
    same forward pass."""
    rows = [json.loads(line) for line in snli_slice.read_text(encoding="utf-8").splitlines()[:8]]
    rows = [r | {"scores": [0.8, 0.3 + 0.05 * i]} for i, r in enumerate(rows)]
    data = write_jsonl(tmp_path / "scored.jsonl", rows)
    lora = {"r": 4, "alpha": 8, "dropout": 0.0}
    plain = Trainer(_rerank_config(tiny_config, data=[str(data)], batch_size=8, lora=lora,
                                   output_dir=str(tmp_path / "plain")))  # fmt: skip
    distilled = Trainer(_rerank_config(tiny_config, data=[str(data)], batch_size=8, lora=lora, score_distillation=0.5,
                                       teacher_temperature=0.1, output_dir=str(tmp_path / "distilled")))  # fmt: skip
    batch = next(iter(distilled.batches.from_step(0)))[1]
    with torch.no_grad():
        scores = distilled.reranker.forward([e.query for e in batch], [[e.positive, *e.negatives] for e in batch])
    teacher = torch.tensor([e.scores for e in batch])
    expected_kl = float(RerankDistillationLoss(0.1)(scores, teacher))
    assert expected_kl > 0.01
    assert distilled._rerank_step(batch) == pytest.approx(plain._rerank_step(batch) + 0.5 * expected_kl, abs=1e-4)
