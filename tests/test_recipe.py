import pytest

from llembed.errors import RecipeError
from llembed.recipe import Recipe, resolve_layers


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_recipe_round_trips(tmp_path, suffix):
    recipe = Recipe(
        model="smollm2-135m",
        prompt="instruction",
        task="Find the answer",
        pooling="mean",
        layer="-4:",
        exclude_prompt=True,
        truncate_dim=64,
        precision="int8",
        icl_examples=[["A cat.", "Cat"]],
    )
    path = recipe.save(tmp_path / f"recipe{suffix}")
    assert Recipe.load(path) == recipe
    assert not list(tmp_path.glob(".*.tmp")), "atomic write left a temporary file"


def test_recipe_rejects_unknown_fields_and_values(tmp_path):
    with pytest.raises(RecipeError, match="unknown recipe field"):
        Recipe.from_dict({"poolng": "mean"})
    with pytest.raises(RecipeError, match="unknown pooling"):
        Recipe(pooling="median")
    with pytest.raises(RecipeError, match="precision"):
        Recipe(precision="int4")
    with pytest.raises(RecipeError, match="padding_side"):
        Recipe(padding_side="middle")
    bad = tmp_path / "bad.yaml"
    bad.write_text("pooling: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid"):
        Recipe.load(bad)
    with pytest.raises(RecipeError, match="not found"):
        Recipe.load(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (-1, [30]),
        (0, [0]),
        (15, [15]),
        (-2, [29]),
        ([3, -1, 3], [3, 30]),
        ("-4:", [27, 28, 29, 30]),
        ("10:12", [10, 11]),
    ],
)
def test_resolve_layers(spec, expected):
    assert resolve_layers(spec, 30) == expected


@pytest.mark.parametrize("spec", [31, -32, "5:5", "a:b", []])
def test_resolve_layers_errors(spec):
    with pytest.raises(RecipeError):
        resolve_layers(spec, 30)


def test_every_recipe_field_has_exactly_one_role():
    """FIELD_ROLES names each field once: a new field without a role (or with two) fails here."""
    import dataclasses

    from llembed.recipe import FIELD_ROLES, RERANK_FIELDS

    named = [name for names in FIELD_ROLES.values() for name in names]
    assert sorted(named) == sorted(f.name for f in dataclasses.fields(Recipe))
    assert len(named) == len(set(named))
    assert RERANK_FIELDS == ("rerank_prompt", "rerank_labels", "rerank_calibration")
    # the digest follows the roles: a rerank field never changes it, a pooling field does
    assert Recipe(rerank_labels=["Yes", "No"]).digest() == Recipe().digest() != Recipe(pooling="mean").digest()
