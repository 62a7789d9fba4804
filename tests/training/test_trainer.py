"""The training loop on tiny models and real SNLI triplets: resume, outputs, objectives."""

import json

import pytest
import torch

from llembed import Embedder
from llembed.errors import InputError
from llembed.training import Trainer
from llembed.training.checkpoint import list_checkpoints

from .conftest import write_jsonl


class Crash(Exception):
    pass


class CrashingTrainer(Trainer):
    """Dies in the middle of step ``crash_at`` (1-based), like a killed process: nothing after it is saved."""

    crash_at = 5

    def _step(self, step, batch):
        if step + 1 == self.crash_at:
            raise Crash
        return super()._step(step, batch)


def _adapter_weights(trainer):
    return {name: p.detach().clone() for name, p in trainer.named_parameters}


def test_resume_after_a_crash_continues_the_same_loss_curve(tiny_config, tmp_path):
    whole = Trainer(tiny_config(output_dir=str(tmp_path / "whole")))
    expected = whole.train().losses

    crashed = CrashingTrainer(tiny_config(output_dir=str(tmp_path / "crashed")))
    with pytest.raises(Crash):
        crashed.train()
    saved = list_checkpoints(tmp_path / "crashed" / "checkpoints")
    assert [c.step for c in saved] == [2, 4]  # the crash lost step 5 only (the last checkpoint is step 4)
    with pytest.raises(InputError, match="--resume"):
        Trainer(tiny_config(output_dir=str(tmp_path / "crashed"))).train()

    resumed = Trainer(tiny_config(output_dir=str(tmp_path / "crashed")))
    result = resumed.train(resume=True)
    assert len(result.losses) == 6
    assert result.losses == pytest.approx(expected, abs=1e-6)
    a, b = _adapter_weights(whole), _adapter_weights(resumed)
    assert all(torch.allclose(a[n], b[n], atol=1e-7) for n in a)


def test_output_folder_loads_as_the_tuned_embedder(tiny_config, tmp_path):
    recipe = {"model": str(tiny_config().recipe["model"]), "prompt": "none", "pooling": "mean"}  # ST can express it
    trainer = Trainer(tiny_config(recipe=recipe, max_steps=3, merge=True, export_sentence_transformers=True))
    result = trainer.train()
    out = result.output_dir
    assert {"adapter", "model", "recipe.yaml", "train_log.jsonl", "loss.png", "sentence-transformers"} <= {
        p.name for p in out.iterdir()
    }
    texts = ["A man is playing a guitar.", "Two dogs run on the beach.", "Cats sleep."]
    tuned = trainer.embedder.encode(texts)
    # recipe.yaml → model/ (merged weights); float32 as the trainer's own embedder (auto is bf16 on some CPUs)
    merged = Embedder.from_pretrained(str(out), dtype="float32")
    assert abs(merged.encode(texts) - tuned).max() < 1e-5
    adapter_recipe = merged.recipe.replace(
        model=str(trainer.config.recipe["model"]), adapter=str(out / "adapter"), dtype="float32"
    )
    with_adapter = Embedder.from_recipe(adapter_recipe)
    assert abs(with_adapter.encode(texts) - tuned).max() < 1e-5
    base = Embedder.from_pretrained(str(trainer.config.recipe["model"]), prompt="none", pooling="mean", dtype="float32")
    assert abs(base.encode(texts) - tuned).max() > 1e-3  # training changed something

    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(out / "sentence-transformers"), device="cpu")
    assert abs(st.encode(texts, normalize_embeddings=True) - tuned).max() < 1e-4


def test_contrastive_training_learns_the_training_pairs(tiny_config, snli_slice, tmp_path):
    """Full fine-tuning of a tiny model drives the InfoNCE loss on 8 fixed real triplets far down."""
    eight = tmp_path / "eight.jsonl"
    eight.write_text("".join(snli_slice.read_text(encoding="utf-8").splitlines(keepends=True)[:8]), encoding="utf-8")
    config = tiny_config(data=[str(eight)], method="full", max_steps=25, learning_rate=3e-3, save_every=100)
    trainer = Trainer(config)
    losses = trainer.train().losses
    assert losses[-1] < 0.3 * losses[0]


def test_multi_task_instructions_and_distillation_run(tiny_config, tiny_model_dirs, tmp_path):
    rows = []
    for i in range(8):
        rows.append(
            {
                "query": f"what is item {i}",
                "positive": f"item {i} is a thing",
                "negatives": [f"not {i}"],
                "task": "qa",
                "instruction": "Answer the question",
                "scores": [5.0, 1.0],
            }
        )
        rows.append(
            {
                "query": f"sentence {i}",
                "positive": f"a sentence {i}",
                "negatives": [f"other {i}"],
                "task": "sts",
                "instruction": "Find a paraphrase",
                "scores": [4.0, 0.5],
            }
        )
    data = write_jsonl(tmp_path / "mt.jsonl", rows)
    seen_tasks = []
    config = tiny_config(
        data=[str(data)],
        recipe={"model": str(tiny_model_dirs["llama"]), "prompt": "instruction", "pooling": "mean"},
        max_steps=4,
        score_distillation=0.5,
        teacher={"model": str(tiny_model_dirs["gpt2"]), "weight": 1.0, "mode": "similarity_mse"},
        matryoshka_dims=[64, 16],
        symmetric=True,
        chunk_size=3,
    )
    trainer = Trainer(config)
    forward = trainer.embedder.forward

    def spy(texts, side="text", task=None):
        if side == "query":
            seen_tasks.append(task)
        return forward(texts, side=side, task=task)

    trainer.embedder.forward = spy
    losses = trainer.train().losses
    assert all(loss == loss and loss > 0 for loss in losses)
    assert set(seen_tasks) == {"Answer the question", "Find a paraphrase"}


def test_graded_pairs_train_with_cosent_beside_triplets(tiny_config, tiny_model_dirs, tmp_path):
    """STS-style graded pairs and NLI triplets in one run: each batch gets its own task's loss."""
    rows = [{"query": f"q {i}", "positive": f"p {i}", "negatives": [f"n {i}"], "task": "nli"} for i in range(4)]
    rows += [{"query": f"s {i}", "positive": f"t {i}", "label": float(i % 5), "task": "sts"} for i in range(4)]
    config = tiny_config(data=[str(write_jsonl(tmp_path / "mixed.jsonl", rows))], batch_size=4, max_steps=4)
    trainer = Trainer(config)
    assert trainer.negatives == {"nli": 1, "sts": 0}  # the graded pairs' lack does not drop the triplets'
    seen = []
    cosent, infonce = trainer.losses["graded"], trainer.losses["pairs"]  # the registry's defaults per input
    trainer.losses["graded"] = lambda *args: seen.append("cosent") or cosent(*args)
    trainer.losses["pairs"] = lambda *args: seen.append("infonce") or infonce(*args)
    losses = trainer.train().losses
    assert sorted(seen) == ["cosent", "cosent", "infonce", "infonce"]  # two batches of each task
    assert sorted(entry["task"] for entry in trainer.log) == ["nli", "nli", "sts", "sts"]  # loss.png: a curve each
    assert all(loss == loss and loss > 0 for loss in losses)


def test_score_distillation_needs_scores(tiny_config):
    with pytest.raises(InputError, match="scores"):
        Trainer(tiny_config(score_distillation=1.0))


def test_mntp_then_simcse_the_llm2vec_recipe(tiny_config, tiny_model_dirs, tmp_path):
    bidirectional = {"model": str(tiny_model_dirs["llama"]), "prompt": "none", "pooling": "mean", "bidirectional": True}
    mntp = Trainer(
        tiny_config(
            objective="mntp",
            recipe=bidirectional,
            max_steps=8,
            merge=True,
            output_dir=str(tmp_path / "mntp"),
            learning_rate=5e-3,
        )
    )
    mntp_losses = mntp.train().losses
    assert sum(mntp_losses[-3:]) < sum(mntp_losses[:3])
    simcse = Trainer(
        tiny_config(
            objective="simcse",
            recipe={**bidirectional, "model": str(tmp_path / "mntp" / "model")},
            output_dir=str(tmp_path / "simcse"),
            max_steps=3,
        )
    )
    result = simcse.train()
    tuned = Embedder.from_pretrained(str(result.output_dir))
    assert tuned.recipe.bidirectional and tuned.recipe.pooling == "mean"
    assert tuned.encode(["hello there"]).shape == (1, 64)


def test_gradient_checkpointing_changes_memory_not_results(tiny_config, tmp_path):
    plain = Trainer(tiny_config(output_dir=str(tmp_path / "a"), max_steps=2, lora={"r": 4, "alpha": 8, "dropout": 0}))
    checkpointed = Trainer(
        tiny_config(
            output_dir=str(tmp_path / "b"),
            max_steps=2,
            lora={"r": 4, "alpha": 8, "dropout": 0},
            gradient_checkpointing=True,
        )
    )
    assert checkpointed.train().losses == pytest.approx(plain.train().losses, abs=1e-6)
    a, b = _adapter_weights(plain), _adapter_weights(checkpointed)
    assert all(torch.allclose(a[n], b[n], atol=1e-6) for n in a)


def test_unknown_recipe_key_in_a_train_config_is_named(tiny_config):
    from llembed.errors import RecipeError

    with pytest.raises(RecipeError, match="poolin"):
        Trainer(tiny_config(recipe={"model": "x", "poolin": "last"}))


def test_a_planted_evaluation_leak_stops_training_before_the_model_loads(tiny_config, snli_slice, tmp_path):
    from llembed.evaluation.decontamination import load_held_out

    claims = list(load_held_out(["scifact"])[0].queries.values())[:3]
    planted = write_jsonl(tmp_path / "planted.jsonl", [{"query": c, "positive": "a passage"} for c in claims])
    with pytest.raises(InputError, match=r"SciFact queries: 3 of 300 in the training data \(3 exactly\)"):
        Trainer(tiny_config(data=[str(snli_slice), str(planted)], recipe={"model": "not loaded", "pooling": "last"}))
    trainer = Trainer(tiny_config(data=[str(snli_slice), str(planted)], on_leak="drop", max_steps=2))
    assert len(trainer.batches.examples) == 64  # the SNLI slice, without the 3 planted claims
    trainer.train()
    report = json.loads((tmp_path / "run" / "decontamination.json").read_text(encoding="utf-8"))
    assert report["leaks"] == 1 and report["on_leak"] == "drop"
    assert Trainer(tiny_config(data=[str(planted)], held_out=[], batch_size=3)).contamination is None


def test_a_teacher_alone_task_learns_only_the_teachers_similarities(tiny_config, tiny_model_dirs, tmp_path):
    from llembed.errors import RecipeError
    from llembed.training.losses import EmbedderDistillationLoss

    sentences = [f"sentence number {i} about {topic}" for i, topic in enumerate(["cats", "stocks", "rain", "tea"] * 2)]
    rows = [{"query": s, "positive": sentences[(i + 3) % 8], "task": "distill"} for i, s in enumerate(sentences)]
    data = write_jsonl(tmp_path / "distill.jsonl", rows)
    teacher = {"model": str(tiny_model_dirs["gpt2"]), "weight": 2.0, "alone": ["distill"]}
    config = tiny_config(data=[str(data)], max_steps=1, batch_size=8, bf16="false", teacher=teacher,
                         lora={"r": 4, "alpha": 8, "dropout": 0.0})  # fmt: skip
    trainer = Trainer(config)
    with torch.no_grad():
        q = trainer.embedder.forward(sentences, side="query")
        p = trainer.embedder.forward([r["positive"] for r in rows], side="document")
    tq, tp = (torch.from_numpy(trainer.teacher.encode(t, normalize=False, show_progress_bar=False))
              for t in (sentences, [r["positive"] for r in rows]))  # fmt: skip
    expected = 2.0 * EmbedderDistillationLoss("similarity_mse")(q, p, tq, tp).item()
    assert trainer.train().losses[0] == pytest.approx(expected, rel=1e-4)  # no InfoNCE on unmatched pairs
    # the teacher cuts what the student cuts: a text past max_length is embedded, not refused
    assert trainer.teacher.recipe.max_length == config.max_length and trainer.teacher.recipe.truncation
    long_text = " ".join(sentences * 100)
    assert trainer.teacher.encode([long_text]).shape[0] == 1
    with pytest.raises(InputError, match="teacher names tasks the data does not have: nli"):
        Trainer(tiny_config(data=[str(data)], teacher=teacher | {"tasks": ["nli"]}))
    with pytest.raises(RecipeError, match="teacher.weight must be positive"):
        Trainer(tiny_config(data=[str(data)], batch_size=8, teacher=teacher | {"weight": 0.0}))


def test_hard_negatives_are_counted_per_task(tiny_config, tmp_path):
    """A task without negatives (plain pairs) used to set the count to 0 for every task, dropping the triplets'."""
    rows = [{"query": f"q {i}", "positive": f"p {i}", "negatives": [f"n {i}", f"m {i}"], "task": "nli"}
            for i in range(4)]  # fmt: skip
    rows += [{"query": f"c {i}", "positive": f"d {i}", "task": "pairs"} for i in range(4)]
    data = str(write_jsonl(tmp_path / "mixed.jsonl", rows))
    assert Trainer(tiny_config(data=[data], batch_size=4)).negatives == {"nli": 2, "pairs": 0}
    assert Trainer(tiny_config(data=[data], batch_size=4, num_negatives=1)).negatives == {"nli": 1, "pairs": 0}
    with pytest.raises(InputError, match="num_negatives=3, but some examples have fewer: task 'nli' has 2"):
        Trainer(tiny_config(data=[data], batch_size=4, num_negatives=3))


def test_training_continues_from_a_saved_adapter(tiny_config, tmp_path):
    lora = {"r": 4, "alpha": 8, "dropout": 0.0}  # no dropout: the loaded adapter's forward is deterministic
    first = Trainer(tiny_config(output_dir=str(tmp_path / "first"), max_steps=3, lora=lora)).train().output_dir
    texts = ["A man is playing a guitar.", "The stock market fell sharply."]
    expected = Embedder.from_pretrained(first, dtype="float32").encode(texts)

    continued = Trainer(tiny_config(output_dir=str(tmp_path / "second"), max_steps=2, init_adapter=str(first)))
    assert [n for n, _ in continued.named_parameters] and all("lora_" in n for n, _ in continued.named_parameters)
    with torch.no_grad():  # before its first step the model is exactly the first run's result
        start_vectors = torch.nn.functional.normalize(continued.embedder.forward(texts), dim=-1)
    assert torch.allclose(start_vectors, torch.from_numpy(expected), atol=1e-5)
    start = _adapter_weights(continued)
    second = continued.train().output_dir
    assert any(not torch.equal(start[n], p) for n, p in continued.named_parameters)  # and it trained further
    assert not torch.allclose(torch.from_numpy(Embedder.from_pretrained(second, dtype="float32").encode(texts)),
                              torch.from_numpy(expected), atol=1e-4)  # fmt: skip


def test_a_missing_init_adapter_is_named_before_the_model_loads(tiny_config, tmp_path, monkeypatch):
    from llembed.errors import RecipeError

    monkeypatch.setattr(Embedder, "from_recipe", lambda *a, **k: pytest.fail("the model loaded"))
    with pytest.raises(InputError, match=r"init_adapter: .*nowhere holds no LoRA adapter"):
        Trainer(tiny_config(init_adapter=str(tmp_path / "nowhere")))
    with pytest.raises(RecipeError, match="init_adapter continues a LoRA: method must be lora"):
        tiny_config(init_adapter=str(tmp_path), method="full")


def test_late_interaction_training_learns_the_token_vectors_search_reads(tiny_config, snli_slice, tmp_path):
    """objective late-interaction drives MaxSim InfoNCE down on 8 real triplets, and the token vectors it trains
    are the ones multi-vector search reads (embed_multivector's token unit) from the tuned model."""
    import numpy as np

    from llembed.multivector import embed_multivector

    eight = tmp_path / "eight.jsonl"
    eight.write_text("".join(snli_slice.read_text(encoding="utf-8").splitlines(keepends=True)[:8]), encoding="utf-8")
    config = tiny_config(data=[str(eight)], objective="late-interaction", method="full", max_steps=25,
                         learning_rate=3e-3, save_every=100)  # fmt: skip
    trainer = Trainer(config)
    losses = trainer.train().losses
    assert losses[-1] < 0.3 * losses[0]

    texts = ["A man is playing a guitar.", "Two dogs run on the beach while the sun sets."]
    with torch.no_grad():
        tokens = trainer.token_reader.forward_tokens(texts, side="document")
    searched = embed_multivector(trainer.embedder, texts, unit="token", side="document")
    for i in range(len(texts)):
        rows = tokens[i][tokens[i].abs().sum(-1) > 0]
        rows = torch.nn.functional.normalize(rows, dim=-1).numpy()
        assert rows.shape == searched.text(i).shape
        np.testing.assert_allclose(rows, searched.text(i), atol=1e-4)


def test_late_interaction_refuses_one_vector_extras(tiny_config):
    from llembed.errors import RecipeError

    with pytest.raises(RecipeError, match="late-interaction"):
        tiny_config(objective="late-interaction", matryoshka_dims=[8, 16])
