"""The training loop: contrastive (InfoNCE, CoSENT on graded pairs, distillation), late interaction (MaxSim over
token vectors), MNTP, SimCSE and rerankers
(listwise or pointwise, on the yes/no answer), with LoRA or full fine-tuning, GradCache, several processes, and
atomic resumable checkpoints.

Why not sentence-transformers' trainer: its losses expect a ``SentenceTransformer`` whose modules own the
whole text → vector path, while llembed's path (prompt templates with text spans kept out of pooling, the
layer read, bidirectional attention, early exit) lives in :class:`Embedder`. The losses here are the same
mathematics (MultipleNegativesRankingLoss, CachedMNRL, MatryoshkaLoss, DistillKLDivLoss) on plain tensors;
peft gives the adapters, transformers the schedules and gradient checkpointing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from llembed.backbone import cpu_has_native_bf16
from llembed.embedder import Embedder
from llembed.errors import InputError, RecipeError
from llembed.evaluation.decontamination import ContaminationReport, TrainingTexts, check, drop_leaks, load_held_out
from llembed.io_utils import atomic_write_text
from llembed.recipe import Recipe
from llembed.reranker import Reranker
from llembed.training import adapters
from llembed.training.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from llembed.training.config import TrainConfig
from llembed.training.data import DEFAULT_TASK, TaskBatches, TrainExample, load_examples, load_sentences
from llembed.training.distributed import (
    World,
    barrier,
    broadcast_parameters,
    gather_with_local_grad,
    init_world,
    sum_gradients,
)
from llembed.training.gradcache import contrastive_backward
from llembed.training.losses import LOSSES
from llembed.training.mntp import mntp_step
from llembed.training.output import write_outputs

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    output_dir: Path
    steps: int
    losses: list[float]
    seconds: float
    recipe_path: Path | None


class Trainer:
    def __init__(self, config: TrainConfig, world: World | None = None) -> None:
        self.config = config
        self.world = world or init_world()
        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        self.contamination: ContaminationReport | None = None
        self.batches = self._batches()  # before the model loads: bad or leaking data fails fast
        if config.init_adapter:
            adapters.adapter_folder(config.init_adapter)  # a wrong path fails fast too
        self.base_recipe = Recipe.from_dict(config.recipe)  # unknown keys: a RecipeError naming them
        self.embedder = Embedder.from_recipe(self.base_recipe.replace(truncation=True, dtype="float32"))
        if self.embedder.recipe.max_length > config.max_length:
            self.embedder = self.embedder.replace(max_length=config.max_length)
        model = self.embedder.backbone.model
        if config.method == "lora" and config.init_adapter:
            self.peft_model = adapters.load_lora(model, config.init_adapter)
        elif config.method == "lora":
            lora = config.lora
            self.peft_model = adapters.add_lora(
                model, lora.r, lora.alpha, lora.dropout, lora.target_modules, lora.layers
            )
        else:
            self.peft_model = None
            for parameter in model.parameters():
                parameter.requires_grad_(True)
        if config.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.reranker = None
        if config.objective == "rerank":  # the same loaded (and adapted) model, judged by its yes/no answer
            self.reranker = Reranker(self.embedder.backbone, self.base_recipe.replace(
                truncation=True, dtype="float32", max_length=self.embedder.recipe.max_length))  # fmt: skip
        self.named_parameters = adapters.trainable_parameters(model)
        self.parameters = [p for _, p in self.named_parameters]
        broadcast_parameters(self.parameters, self.world)
        self.optimizer = torch.optim.AdamW(self.parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
        from transformers import get_scheduler

        self.scheduler = get_scheduler(
            config.schedule, self.optimizer, num_warmup_steps=config.warmup_steps, num_training_steps=config.max_steps
        )
        # token vectors are read as search reads them (multivector.embed_multivector's token unit): each text
        # token's state, the prompt's left out; the same loaded, adapted model
        self.token_reader = self.embedder.replace(pooling="mean", exclude_prompt=True)
        self.teacher = None
        if config.teacher is not None and config.teacher.weight > 0:
            # the teacher reads what the student reads: texts cut at the same length, never refused as too long
            self.teacher = Embedder.from_pretrained(config.teacher.model, truncation=True)
            if self.teacher.recipe.max_length > config.max_length:
                self.teacher = self.teacher.replace(max_length=config.max_length)
        # one loss per kind of input, as the config chooses (the registry's default otherwise)
        self.losses = {inputs: LOSSES[config.loss_name(inputs)].build(config) for inputs in self._inputs()}
        self.log: list[dict] = []

    def _inputs(self) -> list[str]:
        """The kinds of loss input (:data:`llembed.training.losses.INPUTS`) this run's objective produces."""
        config = self.config
        if config.objective == "rerank":
            return ["rerank"] + (["rerank-distillation"] if config.score_distillation > 0 else [])
        if config.objective == "late-interaction":
            return ["tokens"]
        inputs = ["pairs", "graded"] + (["score-distillation"] if config.score_distillation > 0 else [])
        return inputs + (["teacher"] if self.teacher is not None else [])

    # ------------------------------------------------------------------ data
    def _batches(self) -> TaskBatches:
        config = self.config
        if config.batch_size % self.world.size:
            raise RecipeError(f"batch_size {config.batch_size} must split evenly over {self.world.size} processes")
        if config.objective in ("contrastive", "late-interaction", "rerank"):
            examples = load_examples(config.data)
            self.negatives = self._negatives_per_task(examples)
            if config.score_distillation > 0 and any(e.scores is None for e in examples if e.label is None):
                raise InputError("score_distillation needs teacher 'scores' on every example")
            if config.objective in ("rerank", "late-interaction") and any(e.label is not None for e in examples):
                raise InputError(
                    f"{config.objective} training takes (query, positive[, negatives]) examples, not graded pairs"
                )
            if config.objective == "rerank" and not all(self.negatives.values()):
                raise InputError(
                    "rerank training needs hard negatives on every example (the positive is judged against them): "
                    "mine them with `llembed mine-negatives`"
                )
        else:
            sentences = load_sentences(config.data)
            examples = [TrainExample(text, text) for text in sentences]
            self.negatives = {DEFAULT_TASK: 0}
        teacher = config.teacher
        if teacher is not None:
            unknown = sorted((set(teacher.alone) | set(teacher.tasks or ())) - {e.task for e in examples})
            if unknown:
                raise InputError(f"teacher names tasks the data does not have: {', '.join(unknown)}")
            if teacher.alone and teacher.weight <= 0:
                raise RecipeError("teacher.alone tasks learn from the teacher only: teacher.weight must be positive")
        return TaskBatches(self._decontaminate(examples), config.batch_size, config.seed, config.task_weights)

    def _decontaminate(self, examples: list[TrainExample]) -> list[TrainExample]:
        """Check the examples against the held-out evaluation sets and act as ``on_leak`` says."""
        config = self.config
        if not config.held_out:
            return examples
        datasets = load_held_out(config.held_out)
        self.contamination = report = check(TrainingTexts.of_examples(examples), datasets)
        if not report.leaks:
            return examples
        found = report.summary()
        if config.on_leak == "fail":
            raise InputError(
                f"the training data holds items of held-out evaluation sets:\n{found}\nRemove them, or set "
                "on_leak: drop (train without those examples) or on_leak: warn in the train config"
            )
        if config.on_leak == "drop":
            examples, dropped = drop_leaks(examples, datasets)
            logger.warning("dropped %d training examples holding held-out evaluation items:\n%s", len(dropped), found)
        else:
            logger.warning("training on held-out evaluation items (on_leak: warn):\n%s", found)
        return examples

    # ------------------------------------------------------------------ one step
    def _autocast(self):
        setting = self.config.bf16
        device = self.embedder.backbone.device
        native = device.type == "cuda" or cpu_has_native_bf16()
        if setting == "true" or (setting == "auto" and native):
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _negatives_per_task(self, examples: Sequence[TrainExample]) -> dict[str, int]:
        """Hard negatives per example, by task: the fewest the task's examples carry (every process gathers the
        same count), capped by ``num_negatives``. A task without any (graded pairs, plain pairs) trains on
        in-batch negatives alone, so mixing it in does not drop another task's hard negatives."""
        fewest: dict[str, int] = {}
        for example in examples:
            count = 0 if example.label is not None else len(example.negatives)  # CoSENT pairs take none
            fewest[example.task] = min(fewest.get(example.task, count), count)
        cap = self.config.num_negatives
        if cap is not None:
            short = {task: n for task, n in fewest.items() if 0 < n < cap}
            if short:
                raise InputError(
                    f"num_negatives={cap}, but some examples have fewer: "
                    + ", ".join(f"task {task!r} has {n}" for task, n in sorted(short.items()))
                )
            fewest = {task: min(n, cap) for task, n in fewest.items()}
        return fewest

    def _contrastive_step(self, batch: Sequence[TrainExample]) -> float:
        local = list(batch[self.world.shard(len(batch))])
        graded = local[0].label is not None  # the whole batch is one task, so all or none are graded
        k = self.negatives[local[0].task]
        instruction = local[0].instruction
        instructed = instruction is not None or self.embedder.recipe.task is not None
        groups = {
            "queries": [e.query for e in local],
            "positives": [e.positive for e in local],
            "negatives": [n for e in local for n in e.negatives[:k]],
        }
        if self.config.objective == "simcse":  # the same sentence twice; dropout makes the two views differ
            encoders = {name: self._encoder("text") for name in groups}
        elif self.config.objective == "late-interaction":
            encoders = {
                "queries": self._token_encoder("query", instruction) if instructed else self._token_encoder("text"),
                "positives": self._token_encoder("document"),
                "negatives": self._token_encoder("document"),
            }
        else:
            encoders = {
                # with no instruction at all the task is symmetric: its queries are embedded as evaluation embeds a
                # symmetric task's texts (under an instruction prompt, the document side), not as queries
                "queries": self._encoder("query", instruction) if instructed else self._encoder("text"),
                "positives": self._encoder("document"),
                "negatives": self._encoder("document"),
            }
        labels = torch.tensor([e.label for e in local], dtype=torch.float32) if graded else None
        scores = None
        if self.config.score_distillation > 0 and not graded:
            scores = torch.tensor([e.scores[: k + 1] for e in local], dtype=torch.float32)
        settings = self.config.teacher
        task = local[0].task
        alone = settings is not None and task in settings.alone
        taught = self.teacher is not None and (alone or settings.tasks is None or task in settings.tasks)
        teacher = self._teacher_vectors(groups) if taught else None
        world = self.world

        def loss_of(reps: dict[str, torch.Tensor]) -> torch.Tensor:
            full = {name: gather_with_local_grad(value, world) for name, value in reps.items()}
            q, p, n = full["queries"], full["positives"], full.get("negatives")
            if alone:  # unlabelled pairs: only the teacher's similarities say what is close
                loss = q.new_zeros(())
            elif labels is not None:
                loss = self.losses["graded"](q, p, gather_with_local_grad(labels, world))
            elif self.config.objective == "late-interaction":
                loss = self.losses["tokens"](q, p, n)
            else:
                loss = self.losses["pairs"](q, p, n)
            if scores is not None:
                loss = loss + self.config.score_distillation * self.losses["score-distillation"](
                    q, p, n, gather_with_local_grad(scores, world)
                )
            if teacher is not None:
                t = {name: gather_with_local_grad(value, world) for name, value in teacher.items()}
                candidates = torch.cat([p] + ([n] if n is not None else []))
                t_candidates = torch.cat([t["positives"]] + ([t["negatives"]] if "negatives" in t else []))
                teach = self.losses["teacher"]
                loss = loss + self.config.teacher.weight * teach(q, candidates, t["queries"], t_candidates)
            return loss

        return contrastive_backward(groups, encoders, loss_of, self.config.chunk_size)

    def _rerank_step(self, batch: Sequence[TrainExample]) -> float:
        """Each query's loss depends on its own documents only, so chunks of ``chunk_size`` queries backpropagate
        one after another: the gradients equal one pass over the batch, with one chunk's activations alive."""
        local = list(batch[self.world.shard(len(batch))])
        k = self.negatives[local[0].task]
        size = self.config.chunk_size or len(local)
        total = 0.0
        for start in range(0, len(local), size):
            chunk = local[start : start + size]
            groups = [[e.positive, *e.negatives[:k]] for e in chunk]
            scores = self.reranker.forward([e.query for e in chunk], groups, chunk[0].instruction)
            loss = self.losses["rerank"](scores)
            if self.config.score_distillation > 0:  # the teacher's order over the same candidates
                teacher = torch.tensor([list(e.scores[: k + 1]) for e in chunk])
                loss = loss + self.config.score_distillation * self.losses["rerank-distillation"](scores, teacher)
            # the batch's loss is the mean over every process's queries; gradients are summed over processes
            (loss * len(chunk) / len(batch)).backward()
            total += loss.item() * len(chunk)
        return total / len(local)

    def _encoder(self, side: str, task: str | None = None):
        return lambda texts: self.embedder.forward(texts, side=side, task=task)

    def _token_encoder(self, side: str, task: str | None = None):
        # every text padded to the same width, so chunks (GradCache) and processes concatenate
        width = self.token_reader.recipe.max_length
        return lambda texts: self.token_reader.forward_tokens(texts, side=side, task=task, width=width)

    def _teacher_vectors(self, groups: dict[str, list[str]]) -> dict[str, torch.Tensor]:
        return {
            name: torch.from_numpy(self.teacher.encode(texts, normalize=False, show_progress_bar=False))
            for name, texts in groups.items()
            if texts
        }

    def _step(self, step: int, batch: Sequence[TrainExample]) -> float:
        # each step reseeds from (seed, step, rank): dropout is the same whether a run was resumed or not
        torch.manual_seed(self.config.seed * 1_000_003 + step * 101 + self.world.rank)
        self.embedder.backbone.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            if self.config.objective == "mntp":
                local = list(batch[self.world.shard(len(batch))])
                loss = mntp_step(self.embedder, [e.query for e in local], self.config, self.world)
            elif self.config.objective == "rerank":
                loss = self._rerank_step(batch)
            else:
                loss = self._contrastive_step(batch)
        sum_gradients(self.parameters, self.world)
        if self.config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.parameters, self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        return loss

    # ------------------------------------------------------------------ the loop
    def train(self, resume: bool = False) -> TrainResult:
        config, world = self.config, self.world
        out = config.output_path
        start = self._resume() if resume else 0
        if not resume and list_checkpoints(out / "checkpoints"):
            raise InputError(f"{out} already has checkpoints: pass --resume to continue, or a new output_dir")
        if world.is_main:
            out.mkdir(parents=True, exist_ok=True)
            config.save(out / "train_config.yaml")
            if self.contamination is not None:
                report = self.contamination.to_dict() | {"held_out": config.held_out, "on_leak": config.on_leak}
                atomic_write_text(out / "decontamination.json", json.dumps(report, indent=1) + "\n")
        started = time.perf_counter() - (self.log[-1]["seconds"] if self.log else 0.0)
        bar = tqdm(total=config.max_steps, initial=start, desc="training", unit="step", disable=not world.is_main)
        with bar:
            for step, batch in self.batches.from_step(start):
                if step >= config.max_steps:
                    break
                loss = self._step(step, batch)
                entry = {
                    "step": step + 1,
                    "task": batch[0].task,  # batches are one task each: a multi-task run plots a curve per task
                    "loss": loss,
                    "lr": self.scheduler.get_last_lr()[0],
                    "seconds": round(time.perf_counter() - started, 3),
                }
                self.log.append(entry)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
                if (step + 1) % config.save_every == 0 or step + 1 == config.max_steps:
                    self._save_checkpoint(step + 1)
        self.embedder.backbone.model.eval()
        recipe_path = None
        if world.is_main:
            recipe_path = write_outputs(self, self.log)
        barrier(world)
        seconds = self.log[-1]["seconds"] if self.log else 0.0
        return TrainResult(out, len(self.log), [e["loss"] for e in self.log], seconds, recipe_path)

    def _save_checkpoint(self, step: int) -> None:
        if self.world.is_main:
            state = {
                "trainable": {name: p.detach().clone() for name, p in self.named_parameters},
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "log": self.log,
            }
            save_checkpoint(self.config.output_path / "checkpoints", step, state, self.config.keep_checkpoints)
            atomic_write_text(
                self.config.output_path / "train_log.jsonl", "".join(json.dumps(e) + "\n" for e in self.log)
            )
        barrier(self.world)

    def _resume(self) -> int:
        found = list_checkpoints(self.config.output_path / "checkpoints")
        if not found:
            logger.warning("no checkpoint in %s: starting from step 0", self.config.output_path)
            return 0
        state = load_checkpoint(found[-1])
        trainable = dict(self.named_parameters)
        if set(state["trainable"]) != set(trainable):
            raise InputError(f"{found[-1].path} was written by a different model or adapter configuration")
        with torch.no_grad():
            for name, value in state["trainable"].items():
                trainable[name].copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.log = state["log"]
        logger.info("resumed from %s", found[-1].path)
        return state["step"]


def train(config: TrainConfig | str | Path, resume: bool = False, **overrides) -> TrainResult:
    """Train from a config (object or YAML path); the Python door behind ``llembed train``."""
    if not isinstance(config, TrainConfig):
        config = TrainConfig.load(config, **overrides)
    return Trainer(config).train(resume=resume)
