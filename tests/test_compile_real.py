"""torch.compile for real (inductor, frozen weights) on a tiny decoder: the compiled pass gives the eager vectors."""

from __future__ import annotations

import numpy as np

from llembed import Embedder, Recipe
from llembed.backbone import Backbone
from llembed.model_sources import locate

from .conftest import SENTENCES


def test_the_compiled_pass_gives_the_eager_vectors(tiny_model_dirs):
    backbone = Backbone.load(locate(str(tiny_model_dirs["llama"])), dtype="float32")
    embedder = Embedder(backbone, Recipe(prompt="none", pooling="last"))
    eager = embedder.encode(SENTENCES, normalize=True)
    backbone.compile()
    compiled = embedder.encode(SENTENCES, normalize=True)
    assert backbone.compiled is not None  # still in use: the weights did not change
    assert (eager * compiled).sum(axis=1).min() > 0.9999
    singles = np.stack([embedder.encode([text], normalize=True)[0] for text in SENTENCES[:3]])
    assert (singles * eager[:3]).sum(axis=1).min() > 0.9999
