"""The full suite's sections on the tiny model with small samples: every section lands in the report, cells are
tagged with their section, think-then-embed records its generation, and a re-run computes nothing."""

from __future__ import annotations

import json

import pytest

from llembed import Embedder, Recipe
from llembed.errors import InputError
from llembed.evaluation import scenarios
from llembed.evaluation.report_sections import TITLES
from llembed.evaluation.scenarios import SECTIONS, Sizes
from llembed.evaluation.suites import SuiteOptions, run_suite

SMALL = Sizes(
    sick_pairs=40, scifact_queries=6, scifact_documents=20, long_queries=2, long_documents=2, long_window=512,
    multilingual_pairs=10, xquad_queries=11, xquad_documents=20, code_queries=6, code_documents=20,
    reasoning_queries=2, domain_queries=4, domain_documents=10, rerank_queries=2, rerank_retrieval_queries=4,
    rerank_top=3,
)  # fmt: skip
SECTIONS_RUN = ["long", "multilingual", "code", "reasoning", "domains", "scaling", "reranking"]


@pytest.fixture(scope="module")
def suite(tmp_path_factory, tiny_model_dirs):
    out = tmp_path_factory.mktemp("full-suite")
    cache = tmp_path_factory.mktemp("think-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LLEMBED_CACHE", str(cache))
        patch.setattr(scenarios, "SCALING_MODELS", [str(tiny_model_dirs["qwen2"])])  # a second point
        embedder = Embedder.from_pretrained(str(tiny_model_dirs["llama"]), dtype="float32")
        options = SuiteOptions(suite="full", sections=SECTIONS_RUN, sizes=SMALL, baselines=False)
        first = run_suite(embedder, out, options)
        again = run_suite(embedder, out, options)
    return out, first, again


def test_every_section_is_in_the_report_with_its_cells(suite):
    out, first, _ = suite
    markdown = (out / "results.md").read_text(encoding="utf-8")
    for name in SECTIONS_RUN:
        assert f"## {TITLES[name]}" in markdown
        assert any(c.section == name for c in first["cells"]), name
    assert "trained on: nothing: every recipe is training-free" in markdown
    assert "_Subsampled: 2 of 50 queries" in markdown  # AILA case documents in the long section
    payload = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert payload["meta"]["sections"] == SECTIONS_RUN and len(payload["meta"]["models"]) == 2
    assert "Quality and cost by model size" in markdown and "Per language" in markdown
    assert "<img" in (out / "report.html").read_text(encoding="utf-8")


def test_long_documents_compare_cutting_with_mean_and_late_chunking(suite):
    _, first, _ = suite
    labels = {c.label for c in first["cells"] if c.section == "long"}
    for part in ("cut at 256", "cut at 512", "mean chunks of 256", "late chunks of 256", "bidirectional"):
        assert any(part in label for label in labels), part
    late = [c for c in first["cells"] if c.section == "long" and "late" in c.label and "AILA" in c.task]
    assert late and all(c.efficiency["truncated"] == 0 for c in late)  # chunking reads every token


def test_think_cells_count_their_generation_and_share_the_documents(suite):
    _, first, _ = suite
    think = [c for c in first["cells"] if c.section == "reasoning" and c.recipe.get("think") == "self"]
    plain = [c for c in first["cells"] if c.section == "reasoning" and c.recipe.get("think") is None]
    assert think and plain
    assert all(c.efficiency["generated"] == 2 and c.efficiency["generation_seconds"] > 0 for c in think)


def test_rerankers_judge_candidates_and_rerank_retrieval(suite):
    out, first, _ = suite
    cells = [c for c in first["cells"] if c.section == "reranking"]
    birco = [c for c in cells if c.variant == "rerank"]
    assert len(birco) == 6  # three sets × (final layer, early exit)
    assert {c.recipe["reranker"]["layer"] for c in birco} == {-1, 3}  # 2/3 of the tiny model's 4 layers
    retrieval = {c.variant for c in cells if "SciFact" in c.task}
    assert {"dense", "hybrid", "dense → rerank top 3", "hybrid → rerank top 3"} <= retrieval
    assert all(c.efficiency["ms_per_query"] > 0 for c in cells if "rerank" in c.variant)
    markdown = (out / "results.md").read_text(encoding="utf-8")
    assert "## Rerankers from the same LLM" in markdown and "ms/query" in markdown
    best = [Recipe.load(path) for path in out.glob("best_*reranking.yaml")]  # the best *embedding* recipe per set
    assert len(best) == 4 and all(recipe.rerank_prompt is None for recipe in best)


def test_a_rerun_reuses_every_cell(suite):
    _, first, again = suite
    assert again["meta"]["computed"] == 0 and again["meta"]["reused"] == len(first["cells"])


def test_unknown_sections_and_sections_of_the_quick_suite_are_refused():
    with pytest.raises(InputError, match="unknown section huge; choose from " + ", ".join(SECTIONS)):
        SuiteOptions(suite="full", sections=["huge"])
    with pytest.raises(InputError, match="add --suite full"):
        SuiteOptions(suite="quick", sections=["long"])


def test_the_report_can_be_rebuilt_from_the_cache_alone(suite):
    from llembed.evaluation.suites import report_from_cache

    out, first, _ = suite
    rebuilt = report_from_cache("tiny", out, note="rebuilt for the test")
    assert rebuilt["meta"]["sections"] == SECTIONS_RUN and rebuilt["meta"]["computed"] == 0
    assert len(rebuilt["cells"]) == first["meta"]["computed"]  # every cell the first run computed, once
    assert "- note: rebuilt for the test" in (out / "results.md").read_text(encoding="utf-8")


def test_the_best_sts_recipe_is_the_best_mean_over_the_sts_sets_not_the_best_single_cell():
    from types import SimpleNamespace

    from llembed.evaluation.ablation import Cell

    def cell(prompt: str, task: str, score: float, variant: str = "dense") -> Cell:
        recipe = {"prompt": prompt, "pooling": "last"} if variant == "dense" else {"baseline": "all-MiniLM-L6-v2"}
        return Cell(recipe, task, "sts", variant, {"main": score}, {}, section="similarity")

    cells = [
        cell("metaeol", "STS-B", 60.0), cell("metaeol", "STS17", 90.0),  # mean 75, best single cell
        cell("icl", "STS-B", 80.0), cell("icl", "STS17", 80.0),  # mean 80
        cell("ke", "STS-B", 85.0),  # missing STS17: not a candidate
        cell("", "STS-B", 99.0, "baseline"), cell("", "STS17", 99.0, "baseline"),  # baselines are not recipes
    ]  # fmt: skip
    context = SimpleNamespace(runner=SimpleNamespace(cells=cells), base=Recipe(prompt="none"))
    assert scenarios.best_sts_recipe(context) == Recipe(prompt="icl", pooling="last")


def test_reports_say_what_the_model_was_trained_on(tmp_path):
    from llembed.evaluation.suites import trained_on

    assert trained_on(Recipe()) == "nothing: every recipe is training-free"
    (tmp_path / "adapter").mkdir()
    (tmp_path / "train_config.yaml").write_text("data: [snli.jsonl, stsb.jsonl]\n", encoding="utf-8")
    said = trained_on(Recipe(adapter=str(tmp_path / "adapter")))
    assert said == (f"the LoRA adapter {tmp_path / 'adapter'}, trained on snli.jsonl, stsb.jsonl; the "
                    "all-MiniLM-L6-v2 and BM25 rows are not tuned here")  # fmt: skip
