"""Classification: logistic regression on embeddings, MTEB's protocol (10 seeded experiments, each trained on
``samples_per_label`` examples per label); accuracy is the main score."""

from __future__ import annotations

import numpy as np

from llembed.errors import InputError
from llembed.evaluation.data_files import Dataset, check_texts, read_table, split_file
from llembed.evaluation.metrics import classification_scores, mteb_undersample
from llembed.evaluation.tasks.base import LabelledTextTask, lookup, unique

N_EXPERIMENTS = 10


class ClassificationTask(LabelledTextTask):
    """Test texts (held out) classified by a classifier fitted on the train split's vectors (not held out:
    training on it is what the task does)."""

    type = "classification"
    main_metric = "accuracy"
    metric_columns = ("accuracy", "f1")
    marker_file = "train.jsonl"
    infer = False  # told by its train file, not by its rows (those look like clustering's)

    @classmethod
    def load(cls, dataset: Dataset, split: str) -> None:
        if dataset.path.is_file():
            raise InputError(f"{dataset.path}: classification needs a folder with train and test files")
        super().load(dataset, split)
        train_file = split_file(dataset.path, "train")
        dataset.train = read_table(train_file, cls.fields)
        check_texts(train_file, dataset.train, cls.text_fields)

    @property
    def samples_per_label(self) -> int:
        return int(self.dataset.meta.get("samples_per_label", 8))

    def _train_indices(self) -> list[int]:
        labels = [r["label"] for r in self.dataset.train]
        subsets = mteb_undersample(labels, self.samples_per_label, N_EXPERIMENTS)
        return sorted(set().union(*subsets))

    def requests(self) -> dict[str, list[str]]:
        train = [self.dataset.train[i]["text"] for i in self._train_indices()]  # only what the experiments use
        return {"text": unique(train + [r["text"] for r in self.dataset.rows])}

    def score(self, vectors: dict[str, np.ndarray]) -> dict[str, float]:
        get = lookup(self.requests()["text"], vectors["text"])
        train, test = self.dataset.train, self.dataset.rows
        used = self._train_indices()
        train_vectors = np.zeros((len(train), vectors["text"].shape[1]), dtype=np.float32)
        train_vectors[used] = get([train[i]["text"] for i in used])
        scores = classification_scores(
            train_vectors,
            [r["label"] for r in train],
            get([r["text"] for r in test]),
            [r["label"] for r in test],
            samples_per_label=self.samples_per_label,
            n_experiments=N_EXPERIMENTS,
        )
        return {"main": scores[self.main_metric], **scores}
