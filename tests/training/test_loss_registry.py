"""The loss registry: every loss is found from its own file, a config picks one per kind of input, and the
trainer calls what the config picked."""

import pytest

from llembed.errors import RecipeError
from llembed.training.losses import INPUTS, LOSSES, losses_for
from llembed.training.losses.cosent import CoSENTLoss
from llembed.training.losses.embedder_distillation import EmbedderDistillationLoss
from llembed.training.losses.rerank_pointwise import PointwiseRerankLoss


def test_every_loss_is_registered_once_with_one_default_per_input():
    assert set(LOSSES) == {
        "infonce", "cosent", "late-interaction", "listwise", "pointwise", "score-distillation",
        "rerank-distillation", "embedder-distillation",
    }  # fmt: skip
    assert {entry.inputs for entry in LOSSES.values()} == set(INPUTS)
    assert losses_for("rerank") == ["listwise", "pointwise"]  # the default first
    assert all(sum(LOSSES[name].default for name in losses_for(inputs)) == 1 for inputs in INPUTS)


def test_a_loss_is_built_from_the_config_fields_it_names(tiny_config):
    config = tiny_config(cosent_scale=7.0, teacher={"mode": "cosine", "weight": 0.5})
    cosent = LOSSES["cosent"].build(config)
    assert isinstance(cosent, CoSENTLoss) and cosent.scale == 7.0
    teacher = LOSSES["embedder-distillation"].build(config)  # a nested field: teacher.mode
    assert isinstance(teacher, EmbedderDistillationLoss) and teacher.mode == "cosine"


def test_the_config_chooses_a_loss_per_input(tiny_config):
    assert tiny_config().loss_name("pairs") == "infonce"
    assert tiny_config(objective="rerank", losses={"rerank": "pointwise"}).loss_name("rerank") == "pointwise"
    assert tiny_config(objective="rerank", rerank_loss="pointwise").loss_name("rerank") == "pointwise"
    with pytest.raises(RecipeError, match="losses: rerank takes one of listwise, pointwise, not 'infonce'"):
        tiny_config(losses={"rerank": "infonce"})
    with pytest.raises(RecipeError, match="losses: unknown inputs 'vectors'; choose from pairs, graded"):
        tiny_config(losses={"vectors": "infonce"})


def test_the_trainer_calls_the_chosen_loss(tiny_config, snli_slice, tmp_path):
    """``losses: {rerank: pointwise}`` makes the rerank step's loss the pointwise BCE, not the listwise default."""
    from llembed.training.data import TrainExample
    from llembed.training.trainer import Trainer

    trainer = Trainer(tiny_config(objective="rerank", losses={"rerank": "pointwise"}, batch_size=2))
    assert set(trainer.losses) == {"rerank"} and isinstance(trainer.losses["rerank"], PointwiseRerankLoss)
    seen = []
    real = trainer.losses["rerank"]
    trainer.losses["rerank"] = lambda scores: seen.append(scores.detach().clone()) or real(scores)
    examples = [TrainExample(f"query {i}", "a cat sleeps", ("stocks fell",)) for i in range(2)]
    trainer.negatives = {examples[0].task: 1}
    loss = trainer._rerank_step(examples)
    (scores,) = seen
    assert scores.shape == (2, 2) and loss == pytest.approx(float(real(scores)), abs=1e-5)
