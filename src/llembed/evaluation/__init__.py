"""Evaluation on real data with MTEB's metrics, the ablation runner and its report, and the mteb adapter."""

from llembed.extras import require

require("eval", "evaluation")
