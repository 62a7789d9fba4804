"""Convert the real benchmark copies in ../shared/data into llembed's documented layouts (run once; output is
committed under src/llembed/evaluation/data/). Each dataset folder keeps the source's SOURCE.txt and license
file and gets a dataset.json manifest naming its task type, MTEB task and license.

    python scripts/bundle_data.py [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import shutil
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "llembed" / "evaluation" / "data"


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Rows as JSON lines; a ``.gz`` path is gzip-compressed reproducibly (no name or time in the header)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if path.suffix == ".gz":
        with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as handle:
            handle.write(text.encode("utf-8"))
    else:
        path.write_text(text, encoding="utf-8")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def manifest(folder: Path, **fields) -> None:
    (folder / "dataset.json").write_text(json.dumps(fields, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def copy_meta(src: Path, dst: Path, *names: str) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (src / name).exists():
            shutil.copy(src / name, dst / name)


def sts_benchmark(shared: Path) -> None:
    src, dst = shared / "stsbenchmark", OUT / "stsbenchmark"
    for split in ("train", "dev", "test"):
        rows = []
        with (src / f"sts-{split}.csv").open(encoding="utf-8") as handle:
            for line in handle.read().split("\n"):
                parts = line.split("\t")
                if len(parts) >= 7:
                    rows.append({"sentence1": parts[5], "sentence2": parts[6], "score": float(parts[4])})
        write_jsonl(dst / f"{split}.jsonl", rows)
    copy_meta(src, dst, "SOURCE.txt", "LICENSE.txt", "readme.txt")
    manifest(
        dst,
        type="sts",
        name="STSBenchmark",
        mteb="STSBenchmark",
        eval_split="test",
        license="CC BY-SA 4.0 (scores); sentences under their sources' licenses (LICENSE.txt)",
    )


def sick(shared: Path) -> None:
    src, dst = shared / "sick", OUT / "sick"
    splits = {"train": ["SICK_train.txt"], "test": ["SICK_train.txt", "SICK_trial.txt", "SICK_test_annotated.txt"]}
    for split, files in splits.items():
        rows = []
        for name in files:
            with (src / name).open(encoding="utf-8") as handle:
                for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
                    rows.append(
                        {
                            "sentence1": row["sentence_A"],
                            "sentence2": row["sentence_B"],
                            "score": float(row["relatedness_score"]),
                        }
                    )
        write_jsonl(dst / f"{split}.jsonl", rows)
    copy_meta(src, dst, "SOURCE.txt", "readme.txt")
    manifest(
        dst,
        type="sts",
        name="SICK-R",
        mteb="SICK-R",
        eval_split="test",
        note="test = all 9,927 pairs, as MTEB's SICK-R (it includes the train pairs); train = SICK_train only",
        license="CC BY-NC-SA 3.0 (non-commercial)",
    )


def sts17(shared: Path) -> None:
    src, dst = shared / "sts17", OUT / "sts17-en-en"
    pairs = (src / "STS.input.track5.en-en.txt").read_text(encoding="utf-8").rstrip("\n").split("\n")
    gold = (src / "STS.gs.track5.en-en.txt").read_text(encoding="utf-8").rstrip("\n").split("\n")
    assert len(pairs) == len(gold) == 250
    rows = [
        {"sentence1": p.split("\t")[0], "sentence2": p.split("\t")[1], "score": float(g)}
        for p, g in zip(pairs, gold, strict=True)
    ]
    write_jsonl(dst / "test.jsonl", rows)
    copy_meta(src, dst, "SOURCE.txt", "LICENSE.txt")
    manifest(
        dst,
        type="sts",
        name="STS17 en-en",
        mteb="STS17",
        mteb_subset="en-en",
        eval_split="test",
        license="CC BY-SA 4.0",
    )


def twitter_pit(shared: Path) -> None:
    src, dst = shared / "twitter_pit2015", OUT / "twitter-semeval2015"
    data = (src / "test.data").read_text(encoding="utf-8").rstrip("\n").split("\n")
    labels = (src / "test.label").read_text(encoding="utf-8").rstrip("\n").split("\n")
    rows = []
    for line, label in zip(data, labels, strict=True):
        verdict = label.split("\t")[0]
        if verdict == "----":  # debatable pairs are excluded from the official evaluation
            continue
        parts = line.split("\t")
        rows.append({"sentence1": parts[2], "sentence2": parts[3], "label": int(verdict == "true")})
    write_jsonl(dst / "test.jsonl", rows)
    copy_meta(src, dst, "SOURCE.txt", "README.md")
    manifest(
        dst,
        type="pair",
        name="TwitterSemEval2015 (PIT-2015 test)",
        mteb="TwitterSemEval2015",
        eval_split="test",
        mteb_comparable=False,
        note="official PIT-2015 test, debatable pairs dropped (838 pairs); MTEB's TwitterSemEval2015 is built from "
        "other parts of this corpus (not bundled), so its scores are not comparable with MTEB's",
        license="none stated; tweets under Twitter's terms; research use",
    )


def mrpc(shared: Path) -> None:
    src, dst = shared / "mrpc", OUT / "mrpc"
    rows = []
    with (src / "msr-para-test.tsv").open(encoding="utf-8-sig") as handle:
        for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            rows.append({"sentence1": row["#1 String"], "sentence2": row["#2 String"], "label": int(row["Quality"])})
    write_jsonl(dst / "test.jsonl", rows)
    copy_meta(src, dst, "SOURCE.txt", "README.md", "LICENCE.html")
    manifest(dst, type="pair", name="MRPC", eval_split="test", license="MSR shared source licence (non-commercial)")


def banking77(shared: Path) -> None:
    src, dst = shared / "banking77", OUT / "banking77"
    for split in ("train", "test"):
        with (src / f"{split}.csv").open(encoding="utf-8") as handle:
            rows = [{"text": row["text"], "label": row["category"]} for row in csv.DictReader(handle)]
        write_jsonl(dst / f"{split}.jsonl", rows)
    copy_meta(src, dst, "SOURCE.txt", "LICENSE")
    manifest(
        dst,
        type="classification",
        name="Banking77",
        mteb="Banking77Classification",
        eval_split="test",
        samples_per_label=8,
        license="CC BY 4.0",
    )
    cluster = OUT / "banking77-clustering"
    shutil.rmtree(cluster, ignore_errors=True)
    copy_meta(src, cluster, "SOURCE.txt", "LICENSE")
    shutil.copy(dst / "test.jsonl", cluster / "test.jsonl")
    manifest(
        cluster,
        type="clustering",
        name="Banking77 intents as clusters",
        eval_split="test",
        note="derived from the Banking77 test split (77 intents); not an MTEB task",
        license="CC BY 4.0",
    )


def emotion(shared: Path) -> None:
    src, dst = shared / "emotion", OUT / "emotion"
    for split, name in (("train", "train.txt"), ("validation", "val.txt"), ("test", "test.txt")):
        lines = (src / name).read_text(encoding="utf-8").rstrip("\n").split("\n")[1:]
        rows = [{"text": line.rsplit(";", 1)[0], "label": line.rsplit(";", 1)[1]} for line in lines]
        write_jsonl(dst / f"{split}.jsonl", rows)
    copy_meta(src, dst, "SOURCE.txt")
    manifest(
        dst,
        type="classification",
        name="Emotion",
        mteb="EmotionClassification",
        eval_split="test",
        samples_per_label=16,
        license="research / educational use (dair-ai/emotion, CARER)",
    )


def amazon_counterfactual(shared: Path) -> None:
    src, dst = shared / "amazon_counterfactual", OUT / "amazon-counterfactual-en"
    for split in ("train", "test"):
        with (src / f"EN_{split}.tsv").open(encoding="utf-8") as handle:
            reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            rows = [{"text": row["sentence"], "label": int(row["is_counterfactual"])} for row in reader]
        write_jsonl(dst / f"{split}.jsonl", rows)
    copy_meta(src, dst, "SOURCE.txt", "LICENSE")
    manifest(
        dst,
        type="classification",
        name="AmazonCounterfactual en",
        mteb="AmazonCounterfactualClassification",
        mteb_subset="en",
        eval_split="test",
        samples_per_label=32,
        license="CC BY-NC 4.0 (non-commercial)",
    )


def beir(shared: Path, folder: str, target: str, kind: str, compress: bool = False, **fields) -> None:
    """A BEIR folder as it is (``compress``: corpus.jsonl gzip-compressed, for the large ones)."""
    src, dst = shared / "retrieval" / folder, OUT / target
    shutil.rmtree(dst, ignore_errors=True)
    (dst / "qrels").mkdir(parents=True)
    for file in ("queries.jsonl", "qrels/test.tsv"):
        shutil.copy(src / file, dst / file)
    if compress:
        write_jsonl(dst / "corpus.jsonl.gz", read_jsonl(src / "corpus.jsonl"))
    else:
        shutil.copy(src / "corpus.jsonl", dst / "corpus.jsonl")
    copy_meta(src, dst, "SOURCE.txt", "LICENSE", "LICENSE.txt", "README.md")
    manifest(dst, type=kind, eval_split="test", **fields)


# ---------------------------------------------------------------- the specialised scenarios (issue 15)
INSTRUCTIONS = {  # task descriptions for instruction prompts (queries), as E5 / MTEB word them
    "scifact": "Given a scientific claim, retrieve documents that support or refute the claim",
    "birco-arguana": "Given an argument, retrieve the best counter-argument to it",
    "birco-clinical-trial": "Given a patient's case description, retrieve clinical trials the patient is eligible for",
    "birco-relic": "Given literary analysis with a quotation left out, retrieve the passage of the novel it quotes",
    "aila-casedocs": "Given a legal situation, retrieve prior court cases relevant to it",
    "aila-statutes": "Given a legal situation, retrieve the statutes that apply to it",
    "cosqa": "Given a web search query, retrieve the Python function that answers it",
    "nfcorpus-preprocessed": "Given a question about nutrition, retrieve medical documents that answer it",
    "xquad-r": "Given a question, retrieve the sentence, in any language, that answers it",
}
STS17_TRACKS = {  # MTEB STS17 subset → official SemEval-2017 track file
    "ar-ar": "track1.ar-ar",
    "en-ar": "track2.ar-en",
    "es-es": "track3.es-es",
    "es-en": "track4a.es-en",
    "en-tr": "track6.tr-en",
}
STSB_LANGUAGES = ("de", "es", "fr", "it", "nl", "pl", "pt", "ru", "zh", "ja")
TATOEBA_LANGUAGES = (  # high to low resource, several scripts
    "deu", "fra", "spa", "ita", "rus", "cmn", "jpn", "ara", "hin", "tur", "vie", "swh", "eus", "amh",
)  # fmt: skip
XQUAD_LANGUAGES = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")


def sts17_multilingual(shared: Path) -> None:
    """The non-English STS17 tracks, one subset each (MTEB's names). Track 6 has 500 input lines for 250 gold
    scores: the gold scores belong to the first 250 (all-MiniLM-L6-v2 then scores 4.4965, MTEB's en-tr value;
    the last 250 give -0.29)."""
    src, dst = shared / "sts17", OUT / "sts17-multilingual"
    rows = []
    for subset, track in STS17_TRACKS.items():
        pairs = (src / f"STS.input.{track}.txt").read_text(encoding="utf-8").rstrip("\n").split("\n")
        gold = (src / f"STS.gs.{track}.txt").read_text(encoding="utf-8").split()
        for pair, score in zip(pairs[: len(gold)], gold, strict=True):
            first, second = pair.split("\t")[:2]
            rows.append({"sentence1": first, "sentence2": second, "score": float(score), "subset": subset})
    write_jsonl(dst / "test.jsonl", rows)
    copy_meta(src, dst, "SOURCE.txt", "LICENSE.txt")
    manifest(
        dst,
        type="sts",
        name="STS17 multilingual",
        mteb="STS17",
        subsets=list(STS17_TRACKS),
        eval_split="test",
        note="es-en = track 4a (SNLI); en-tr = the first 250 lines of track 6",
        license="CC BY-SA 4.0",
    )


def stsb_multi_mt(shared: Path) -> None:
    """STS-B test machine-translated into 10 languages (English is the STS Benchmark itself)."""
    src, dst = shared / "stsb_multi_mt", OUT / "stsb-multi-mt"
    rows = []
    for language in STSB_LANGUAGES:
        with (src / f"stsb-{language}-test.csv").open(encoding="utf-8", newline="") as handle:
            for first, second, score in csv.reader(handle):
                rows.append({"sentence1": first, "sentence2": second, "score": float(score), "subset": language})
    write_jsonl(dst / "test.jsonl", rows)
    copy_meta(src, dst, "SOURCE.txt", "LICENSE", "README.md")
    manifest(
        dst,
        type="sts",
        name="STS-B multilingual (stsb_multi_mt)",
        mteb="STSBenchmarkMultilingualSTS",
        subsets=list(STSB_LANGUAGES),
        eval_split="test",
        license="as the STS Benchmark (CC BY-SA 4.0 scores); translations by T-Systems (stsb_multi_mt)",
    )


def tatoeba(shared: Path) -> None:
    """Tatoeba bitext pairs for a fixed list of languages: sentence1 in the language, sentence2 its English."""
    src, dst = shared / "tatoeba", OUT / "tatoeba"
    rows = []
    for language in TATOEBA_LANGUAGES:
        source = (src / f"tatoeba.{language}-eng.{language}").read_text(encoding="utf-8").rstrip("\n").split("\n")
        english = (src / f"tatoeba.{language}-eng.eng").read_text(encoding="utf-8").rstrip("\n").split("\n")
        for first, second in zip(source, english, strict=True):
            rows.append({"sentence1": first, "sentence2": second, "subset": f"{language}-eng"})
    write_jsonl(dst / "test.jsonl", rows)
    copy_meta(src, dst, "SOURCE.txt", "README.md")
    manifest(
        dst,
        type="bitext",
        name="Tatoeba",
        mteb="Tatoeba",
        subsets=[f"{language}-eng" for language in TATOEBA_LANGUAGES],
        eval_split="test",
        license="CC BY 2.0 FR (Tatoeba)",
    )


def xquad_r(shared: Path) -> None:
    """LAReQA XQuAD-R: a question in any of 11 languages, sentences of all 11 as candidates; the relevant ones
    are the answer sentence in every language (the qa id is shared by the translations)."""
    src, dst = shared / "retrieval" / "xquad-r", OUT / "xquad-r"
    shutil.rmtree(dst, ignore_errors=True)
    corpus, queries, gold = [], [], {}
    for language in XQUAD_LANGUAGES:
        corpus += read_jsonl(src / language / "corpus.jsonl")
        queries += read_jsonl(src / language / "queries.jsonl")
        with (src / language / "qrels" / "test.tsv").open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                gold.setdefault(row["query-id"].split("-", 1)[1], []).append(row["corpus-id"])
    write_jsonl(dst / "corpus.jsonl.gz", corpus)
    write_jsonl(dst / "queries.jsonl.gz", queries)
    lines = ["query-id\tcorpus-id\tscore\n"]
    for query in queries:
        lines += [f"{query['_id']}\t{doc}\t1\n" for doc in gold[query["_id"].split("-", 1)[1]]]
    (dst / "qrels").mkdir(parents=True)
    with (dst / "qrels" / "test.tsv.gz").open("wb") as raw, gzip.GzipFile("", "wb", fileobj=raw, mtime=0) as handle:
        handle.write("".join(lines).encode("utf-8"))
    copy_meta(src, dst, "SOURCE.txt")
    manifest(
        dst,
        type="retrieval",
        name="XQuAD-R (LAReQA, cross-lingual)",
        instruction=INSTRUCTIONS["xquad-r"],
        languages=list(XQUAD_LANGUAGES),
        eval_split="test",
        note="queries in 11 languages; every query's 11 relevant documents are its answer sentence in each language",
        license="CC BY-SA 4.0",
    )


def cosqa_pairs(shared: Path) -> None:
    """CoSQA dev (604 labelled query–function pairs) as pair classification."""
    src, dst = shared / "cosqa_webquery", OUT / "cosqa-pairs"
    data = json.loads((src / "cosqa-dev.json").read_text(encoding="utf-8"))
    rows = [{"sentence1": row["doc"], "sentence2": row["code"], "label": int(row["label"])} for row in data]
    write_jsonl(dst / "test.jsonl", rows)
    copy_meta(src, dst, "SOURCE.txt", "README.md", "Data_LICENCE")
    manifest(dst, type="pair", name="CoSQA dev pairs", eval_split="dev", license="C-UDA (CodeXGLUE)")


def nfcorpus(shared: Path) -> None:
    """NFCorpus test (original release, preprocessed text) in BEIR layout: titles queries, 2-1-0 graded qrels."""
    src, dst = shared / "nfcorpus_original_preprocessed", OUT / "nfcorpus-preprocessed"
    shutil.rmtree(dst, ignore_errors=True)
    corpus = []
    for line in (src / "test.docs").read_text(encoding="utf-8").splitlines():
        doc_id, text = line.split("\t", 1)
        corpus.append({"_id": doc_id, "title": "", "text": text})
    queries = []
    for line in (src / "test.titles.queries").read_text(encoding="utf-8").splitlines():
        query_id, text = line.split("\t", 1)
        queries.append({"_id": query_id, "text": text})
    write_jsonl(dst / "corpus.jsonl.gz", corpus)
    write_jsonl(dst / "queries.jsonl", queries)
    (dst / "qrels").mkdir(parents=True)
    with (dst / "qrels" / "test.tsv").open("w", encoding="utf-8") as out:
        out.write("query-id\tcorpus-id\tscore\n")
        for line in (src / "test.2-1-0.qrel").read_text(encoding="utf-8").splitlines():
            query_id, _, doc_id, score = line.split("\t")
            out.write(f"{query_id}\t{doc_id}\t{score}\n")
    copy_meta(src, dst, "SOURCE.txt", "README.txt")
    manifest(
        dst,
        type="retrieval",
        name="NFCorpus (original, preprocessed text)",
        instruction=INSTRUCTIONS["nfcorpus-preprocessed"],
        eval_split="test",
        mteb_comparable=False,
        note="lower-cased, stop-words removed: scores are not comparable with MTEB's NFCorpus",
        license="academic use (NFCorpus README)",
    )


def scenarios(shared: Path) -> None:
    sts17_multilingual(shared)
    stsb_multi_mt(shared)
    tatoeba(shared)
    xquad_r(shared)
    cosqa_pairs(shared)
    nfcorpus(shared)
    legal = {"instruction": INSTRUCTIONS["aila-casedocs"], "license": "CC BY 4.0", "domain": "legal"}
    beir(shared, "aila-casedocs", "aila-casedocs", "retrieval", True, name="AILACasedocs", mteb="AILACasedocs", **legal)
    legal["instruction"] = INSTRUCTIONS["aila-statutes"]
    beir(shared, "aila-statutes", "aila-statutes", "retrieval", name="AILAStatutes", mteb="AILAStatutes", **legal)
    code = {"instruction": INSTRUCTIONS["cosqa"], "license": "C-UDA (code MIT)", "domain": "code"}
    beir(shared, "cosqa", "cosqa", "retrieval", True, name="CoSQA (CoCLR 6,267-function pool)", **code)
    birco = {"birco-clinical-trial": "BIRCOClinicalTrialReranking", "birco-relic": "BIRCORelicRetrieval"}
    for name, mteb in birco.items():
        note = "candidates per query = its qrels rows, score-0 rows are the negatives"
        title = f"BIRCO {name.split('-', 1)[1]} (reranking)"
        beir(shared, name, name, "reranking", True, name=title, mteb=mteb, note=note, license="CC BY-NC 4.0",
             instruction=INSTRUCTIONS[name])  # fmt: skip


EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"


def snli_triplets(shared: Path) -> None:
    """Training data for the tuning examples: SNLI (premise, entailment, contradiction) triplets, dev + test.

    Never an evaluation split of ours; STS17's sentences come from SNLI, so a model tuned on this is not
    evaluated on STS17."""
    src, dst = shared / "snli_dev_test", EXAMPLES / "snli"
    if dst.exists():
        shutil.rmtree(dst)
    rows = []
    for split in ("dev", "test"):
        with (src / f"nli_triplets_{split}.tsv").open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
                rows.append(
                    {
                        "query": row["anchor"],
                        "positive": row["positive"],
                        "negatives": [row["hard_negative"]],
                        "task": "nli",
                    }
                )
    write_jsonl(dst / "triplets.jsonl", rows)
    copy_meta(src, dst, "SOURCE.txt")
    (dst / "LICENSE.txt").write_text(
        "SNLI (Bowman et al., 2015) is licensed under CC BY-SA 4.0: https://creativecommons.org/licenses/by-sa/4.0/\n",
        encoding="utf-8",
    )


def stsb_train_pairs(shared: Path) -> None:
    """Graded pairs for CoSENT tuning: the STS Benchmark *train* split (never dev or test), label 0–5."""
    src, dst = shared / "stsbenchmark", EXAMPLES / "stsb"
    if dst.exists():
        shutil.rmtree(dst)
    rows = []
    with (src / "sts-train.csv").open(encoding="utf-8") as handle:
        for line in handle.read().split("\n"):
            parts = line.split("\t")
            if len(parts) >= 7:
                rows.append({"query": parts[5], "positive": parts[6], "label": float(parts[4]), "task": "sts"})
    write_jsonl(dst / "train_pairs.jsonl", rows)
    copy_meta(src, dst, "SOURCE.txt", "LICENSE.txt", "readme.txt")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--scenarios-only", action="store_true", help="only the specialised-scenario sets")
    args = parser.parse_args()
    shared = args.shared
    scenarios(shared)
    if args.scenarios_only:
        return
    for convert in (sts_benchmark, sick, sts17, twitter_pit, mrpc, banking77, emotion, amazon_counterfactual):
        convert(shared)
    beir(
        shared,
        "scifact",
        "scifact",
        "retrieval",
        name="SciFact",
        mteb="SciFact",
        instruction=INSTRUCTIONS["scifact"],
        license="CC BY-NC 2.0",
    )
    beir(
        shared,
        "birco-arguana",
        "birco-arguana",
        "reranking",
        name="BIRCO ArguAna (reranking)",
        instruction=INSTRUCTIONS["birco-arguana"],
        note="candidates per query = its qrels rows, score-0 rows are the negatives",
        license="CC BY-NC 4.0",
    )
    snli_triplets(shared)
    stsb_train_pairs(shared)
    print(f"wrote {sorted(p.name for p in OUT.iterdir())}, {EXAMPLES / 'snli'} and {EXAMPLES / 'stsb'}")


if __name__ == "__main__":
    main()
