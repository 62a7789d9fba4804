import json

import pytest

from llembed.errors import InputError
from llembed.evaluation.bundled import bundled_names, load_bundled, subsample_pairs, subsample_retrieval
from llembed.evaluation.datasets import load_dataset, select_subsets, subset_names


def write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_every_bundled_dataset_loads_with_its_license_and_source():
    names = bundled_names()
    assert {"stsbenchmark", "sick", "scifact", "banking77", "emotion", "twitter-semeval2015"} <= set(names)
    for name in names:
        dataset = load_bundled(name)
        assert (dataset.path / "SOURCE.txt").is_file()
        assert dataset.meta.get("license")
    assert len(load_bundled("stsbenchmark").rows) == 1379
    assert len(load_bundled("sick").rows) == 9927
    scifact = load_bundled("scifact")
    assert (len(scifact.queries), len(scifact.corpus), sum(map(len, scifact.qrels.values()))) == (300, 5183, 339)


def test_user_layouts_and_type_inference(tmp_path):
    sts = write(tmp_path / "sts.jsonl", [{"sentence1": "a", "sentence2": "b", "score": 1}])
    assert load_dataset(sts).type == "sts"
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("sentence1\tsentence2\tlabel\nx\ty\t1\n")
    assert load_dataset(tsv).rows == [{"sentence1": "x", "sentence2": "y", "label": 1}]
    write(tmp_path / "cls" / "train.jsonl", [{"text": "t", "label": "a"}])
    write(tmp_path / "cls" / "test.jsonl", [{"text": "u", "label": "a"}])
    assert load_dataset(tmp_path / "cls").type == "classification"
    clustering = write(tmp_path / "clu.jsonl", [{"text": "t", "label": "a"}])
    assert load_dataset(clustering, type="clustering").type == "clustering"


def test_malformed_files_name_file_line_and_problem(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"sentence1": "a", "sentence2": "b", "score": 1}\n{"sentence1": "a", "score": 2}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: missing field\(s\) sentence2"):
        load_dataset(bad, type="sts")
    bad.write_text('{"sentence1": "a", "sentence2": "b", "score": "high"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:1: score 'high' is not a number"):
        load_dataset(bad, type="sts")
    bad.write_text('{"sentence1": "a", "sentence2": "", "label": 1}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:1: field 'sentence2' is not a non-empty string"):
        load_dataset(bad, type="pair")
    bad.write_text('{"sentence1": "a", "sentence2": "b", "label": 2}\n')
    with pytest.raises(InputError, match="is not 0 or 1"):
        load_dataset(bad, type="pair")
    beir = tmp_path / "beir"
    write(beir / "corpus.jsonl", [{"_id": "d1", "text": "doc"}])
    write(beir / "queries.jsonl", [{"_id": "q1", "text": "query"}])
    (beir / "qrels").mkdir()
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\n")
    with pytest.raises(InputError, match=r"test.tsv:2: corpus id 'd2' not in corpus.jsonl"):
        load_dataset(beir)
    with pytest.raises(InputError, match="dataset not found"):
        load_dataset(tmp_path / "missing")


def test_subsamples_are_fixed_and_keep_judged_documents():
    scifact = load_bundled("scifact")
    small = subsample_retrieval(scifact, 10, 20)
    again = subsample_retrieval(scifact, 10, 20)
    assert small.queries == again.queries and small.corpus.keys() == again.corpus.keys()
    judged = {doc for q in small.queries for doc in small.qrels[q]}
    assert judged <= small.corpus.keys() and len(small.corpus) == len(judged) + 20
    assert "random" in small.subsample_note
    pairs = subsample_pairs(load_bundled("stsbenchmark"), 50)
    assert (
        len(pairs.rows) == 50 and pairs.fingerprint() == subsample_pairs(load_bundled("stsbenchmark"), 50).fingerprint()
    )


def test_languages_of_a_multilingual_set_are_selected_with_their_judgements():
    xquad = load_bundled("xquad-r")
    assert len(subset_names(xquad)) == 11 and len(xquad.queries) == 11 * 1190
    assert all(len(docs) == 11 for docs in xquad.qrels.values())  # the answer sentence in every language
    two = select_subsets(xquad, ["en", "de"])
    assert len(two.queries) == 2 * 1190 and {d[:3] for d in two.corpus} == {"en-", "de-"}
    assert all(len(docs) == 2 and {d[:3] for d in docs} == {"en-", "de-"} for docs in two.qrels.values())

    stsb = subsample_pairs(load_bundled("stsb-multi-mt"), 30)
    counts = {}
    for row in stsb.rows:
        counts[row["subset"]] = counts.get(row["subset"], 0) + 1
    assert counts == {language: 30 for language in ("de", "es", "fr", "it", "nl", "pl", "pt", "ru", "zh", "ja")}
    assert "30 per subset of 13790 pairs" in stsb.subsample_note
