"""One task class per task type; :func:`make_task` picks it for a dataset."""

from llembed.evaluation.datasets import Dataset
from llembed.evaluation.tasks.base import Task
from llembed.evaluation.tasks.bitext import BitextMiningTask
from llembed.evaluation.tasks.classification import ClassificationTask
from llembed.evaluation.tasks.clustering import ClusteringTask
from llembed.evaluation.tasks.pair_classification import PairClassificationTask
from llembed.evaluation.tasks.reranking import RerankingTask
from llembed.evaluation.tasks.retrieval import RetrievalTask
from llembed.evaluation.tasks.sts import STSTask

TASKS: dict[str, type[Task]] = {
    cls.type: cls
    for cls in (
        STSTask,
        PairClassificationTask,
        BitextMiningTask,
        ClassificationTask,
        ClusteringTask,
        RetrievalTask,
        RerankingTask,
    )
}


def make_task(dataset: Dataset) -> Task:
    return TASKS[dataset.type](dataset)


__all__ = ["TASKS", "Task", "make_task"]
