"""Training losses, one per file, on plain tensors (so they run on cached or gathered representations)."""

from llembed.training.losses.contrastive import InfoNCELoss
from llembed.training.losses.cosent import CoSENTLoss
from llembed.training.losses.embedder_distillation import EmbedderDistillationLoss
from llembed.training.losses.late_interaction import LateInteractionLoss
from llembed.training.losses.mntp import mntp_loss
from llembed.training.losses.rerank_distillation import RerankDistillationLoss
from llembed.training.losses.rerank_listwise import ListwiseRerankLoss
from llembed.training.losses.rerank_pointwise import PointwiseRerankLoss
from llembed.training.losses.score_distillation import ScoreDistillationLoss

__all__ = [
    "CoSENTLoss",
    "EmbedderDistillationLoss",
    "InfoNCELoss",
    "LateInteractionLoss",
    "ListwiseRerankLoss",
    "PointwiseRerankLoss",
    "RerankDistillationLoss",
    "ScoreDistillationLoss",
    "mntp_loss",
]
