"""Build licence-clean question → passage training data for retrieval (issue 27), with mined hard negatives and
teacher scores.

    apt-get install python3.11-doc wordnet-base   # Debian's packages: the sources read below
    .venv/bin/python examples/build_retrieval_mix.py [--out examples/data/retrieval]

Sources (each under a licence that allows training a model that ships; attribution in ``SOURCE.txt``):

- The Python 3.11 documentation's reStructuredText sources (``python3.11-doc``, PSF Documentation licence):
  ``faq``: every FAQ entry, its question → its answer; ``docs``: every section of the tutorial, HOWTOs, library
  and language reference with a title of at least two words → the section's opening passage, the page's title
  before the section's (a topic → the passage about it).
- WordNet 3.0 (``wordnet-base``, the WordNet licence): ``wordnet``: "What is <noun>?" → its gloss (with its
  examples), a sister term's gloss (another hyponym of the same hypernym) as the hard negative.
- ``gecko`` (``--gecko N``): Gecko-style synthetic questions over N of the documentation passages and FAQ
  answers, written by the bundled SmolLM2-135M-Instruct (``llembed.synthesis.run_gecko``: MiniLM retrieves 4
  candidates per question, the generator's query likelihood picks the positive, a lower one is the negative,
  MiniLM's consistency filter keeps a question only if its positive is in MiniLM's top 3, and only if their
  cosine reaches ``GECKO_MIN_TEACHER``). The generation is stored in ``--work`` and resumes when interrupted.

Every query gets further hard negatives mined with BM25 over the task's passages (the positives and any passage
scoring at least 0.95 × the positive are skipped: NV-Retriever's false-negative filter) and all-MiniLM-L6-v2's
cosine for its positive and each negative as teacher ``scores``. Every file is checked against every bundled
evaluation set and the examples holding a scored item are dropped.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import defaultdict
from pathlib import Path

from llembed.evaluation.decontamination import drop_leaks, load_held_out
from llembed.training.data import TrainExample, write_examples

ROOT = Path(__file__).resolve().parent
DOCS = Path("/usr/share/doc/python3.11/html/_sources")
WORDNET = Path("/usr/share/wordnet")
QUESTION = "Given a question, retrieve passages that answer it"
INSTRUCTIONS = {"faq": QUESTION, "wordnet": QUESTION, "docs": "Given a topic, retrieve a passage about it"}
UNDERLINE = re.compile(r"^([=\-~^*#+\"'`])\1{2,}\s*$")
ROLE = re.compile(r":[a-z:]+:`~?!?([^`<]*?)(?:\s*<[^`>]*>)?`")
LINK = re.compile(r"`([^`<]+?)\s*<[^`>]*>`__?")
MIN_WORDS, MAX_WORDS = 20, 180
GECKO_MIN_TEACHER = 0.4
"""A synthetic question is kept only if MiniLM's cosine with its positive reaches this (noise otherwise)."""
DOC_PARTS = ("tutorial", "howto", "library", "reference", "faq", "using", "extending")


def clean(text: str) -> str:
    """RST inline markup → plain text: roles (``:func:`len``` → ``len``), links, emphasis, literals."""
    text = ROLE.sub(lambda m: m.group(1), text)
    text = LINK.sub(lambda m: m.group(1), text)
    text = re.sub(r"``([^`]+)``", r"\1", text)
    text = re.sub(r"\*\*?([^*]+)\*\*?", r"\1", text)
    text = re.sub(r"`([^`]+)`_?", r"\1", text)
    text = re.sub(r"\s*\[(#|\d+)\]_", "", text)  # footnote references
    return re.sub(r"\s+", " ", text).strip()


def sections(path: Path) -> tuple[str, list[tuple[str, str]]]:
    """(page title, [(section title, opening passage)]) of an RST file: a section's prose paragraphs up to
    ``MAX_WORDS`` words, without directives, literal blocks, tables or lists of links."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    found: list[tuple[str, list[str]]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if UNDERLINE.match(line) and i + 2 < len(lines) and UNDERLINE.match(lines[i + 2]):
            found.append((clean(nxt), []))  # an overlined title
            i += 3
            continue
        if line.strip() and not line.startswith(" ") and UNDERLINE.match(nxt) and len(nxt.strip()) >= len(line.strip()):
            found.append((clean(line), []))
            i += 2
            continue
        if found:
            found[-1][1].append(line)
        i += 1
    if not found:
        return "", []
    page = found[0][0]
    return page, [(title, _opening(body)) for title, body in found[1:]]


def _opening(body: list[str]) -> str:
    paragraphs, current, skipping = [], [], False
    for line in body + [""]:
        if not line.strip():
            if current:
                paragraphs.append(" ".join(current))
            current = []
            continue
        indented = line.startswith((" ", "\t"))
        if skipping and indented:
            continue  # inside a directive or a literal block
        skipping = False
        stripped = line.strip()
        if stripped.startswith(".. ") or stripped.startswith(("+-", "|", "=====", ">>>")):
            skipping = True
            continue
        if indented:
            continue
        current.append(stripped)
        if stripped.endswith("::"):  # a literal block follows
            skipping = True
    text, words = [], 0
    for paragraph in paragraphs:
        paragraph = clean(paragraph.replace("::", ":"))
        if not paragraph or paragraph.startswith(("* ", "- ", "#. ")):
            continue
        text.append(paragraph)
        words += len(paragraph.split())
        if words >= MAX_WORDS:
            break
    return " ".join(" ".join(text).split()[:MAX_WORDS])


def python_docs() -> tuple[list[TrainExample], list[TrainExample]]:
    """(faq, docs) examples from the Python documentation's sources."""
    faq, docs = [], []
    for path in sorted(DOCS.rglob("*.rst.txt")):
        part = path.relative_to(DOCS).parts[0]
        if part not in DOC_PARTS:
            continue
        page, found = sections(path)
        for title, passage in found:
            if len(passage.split()) < MIN_WORDS or not title:
                continue
            if part == "faq" and title.endswith("?"):
                faq.append(TrainExample(title, passage, (), "faq", INSTRUCTIONS["faq"]))
            elif part != "faq" and len(title.split()) >= 2:
                topic = f"{page}: {title}" if page and page.lower() not in title.lower() else title
                docs.append(TrainExample(topic, passage, (), "docs", INSTRUCTIONS["docs"]))
    return faq, docs


def wordnet(rng: random.Random, count: int) -> list[TrainExample]:
    """ "What is <noun>?" → its gloss; a sister term's gloss as the hard negative."""
    synsets: dict[str, tuple[list[str], str, list[str]]] = {}
    for line in (WORDNET / "data.noun").read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("  "):
            continue  # the licence header
        head, _, gloss = line.partition(" | ")
        fields = head.split()
        offset, words = fields[0], int(fields[3], 16)
        lemmas = [fields[4 + 2 * k].replace("_", " ") for k in range(words)]
        rest = fields[4 + 2 * words :]
        pointers = int(rest[0])
        hypernyms = [rest[1 + 4 * k + 1] for k in range(pointers) if rest[1 + 4 * k] in ("@", "@i")]
        synsets[offset] = (lemmas, gloss.strip(), hypernyms)
    children: dict[str, list[str]] = defaultdict(list)
    for offset, (_, _, hypernyms) in synsets.items():
        for parent in hypernyms:
            children[parent].append(offset)
    candidates = [
        offset
        for offset, (lemmas, gloss, hypernyms) in synsets.items()
        if len(gloss.split(";")[0].split()) >= 6
        and any(len(children[p]) > 1 for p in hypernyms)
        and not lemmas[0][0].isupper()  # common nouns: proper names make trivia, not definitions
    ]
    examples = []
    for offset in rng.sample(sorted(candidates), min(count, len(candidates))):
        lemmas, gloss, hypernyms = synsets[offset]
        sisters = [s for p in hypernyms for s in children[p] if s != offset]
        sister = synsets[rng.choice(sorted(sisters))]
        word = lemmas[0]
        query = rng.choice([f"What is {word}?", f"What does {word} mean?", f"define {word}", f"{word} definition"])
        examples.append(TrainExample(query, _gloss(lemmas, gloss), (_gloss(sister[0], sister[1]),), "wordnet",
                                     INSTRUCTIONS["wordnet"]))  # fmt: skip
    return examples


def _gloss(lemmas: list[str], gloss: str) -> str:
    """A dictionary entry as a passage: the gloss and its quoted examples, without naming the word (so the query's
    word must be matched by meaning)."""
    return gloss.replace('"', "").strip().rstrip(";")


def mine_and_score(examples: list[TrainExample], negatives: int) -> list[TrainExample]:
    """Add BM25-mined hard negatives from the task's own passages, then MiniLM's cosines as teacher scores."""
    from llembed import Embedder
    from llembed.bm25 import BM25

    passages = sorted({e.positive for e in examples} | {n for e in examples for n in e.negatives})
    row_of = {text: row for row, text in enumerate(passages)}
    index = BM25.build(passages)
    mined = []
    for start in range(0, len(examples), 256):
        block = examples[start : start + 256]
        for example, row_scores in zip(block, index.scores([e.query for e in block]), strict=True):
            positive = row_scores[row_of[example.positive]]
            order = row_scores.argsort()[::-1]
            found = list(example.negatives)
            for row in order[: 10 * (negatives + 1)]:
                text = passages[row]
                if len(found) >= negatives:
                    break
                if text == example.positive or text in found or (positive > 0 and row_scores[row] >= 0.95 * positive):
                    continue
                found.append(text)
            mined.append(TrainExample(example.query, example.positive, tuple(found), example.task, example.instruction))
    teacher = Embedder.from_pretrained("all-minilm-l6-v2", dtype="float32", truncation=True)
    queries = teacher.encode([e.query for e in mined], batch_size=64, show_progress_bar=True)
    texts = sorted({t for e in mined for t in (e.positive, *e.negatives)})
    vectors = dict(zip(texts, teacher.encode(texts, batch_size=64, show_progress_bar=True), strict=True))
    scored = []
    for example, query in zip(mined, queries, strict=True):
        scores = [float(query @ vectors[t]) for t in (example.positive, *example.negatives)]
        scored.append(TrainExample(example.query, example.positive, example.negatives, example.task,
                                   example.instruction, scores=tuple(scores)))  # fmt: skip
    return scored


def gecko(passages: list[str], count: int, work: Path, seed: int) -> list[TrainExample]:
    """Synthetic questions over the first ``count`` passages of a seeded shuffle (a larger ``count`` later resumes
    the same generation), written by the bundled default model."""
    from llembed import Embedder
    from llembed.synthesis import GeckoOptions, make_generator, run_gecko
    from llembed.training.data import load_examples

    chosen = list(passages)
    random.Random(seed).shuffle(chosen)
    chosen = chosen[:count]
    minilm = Embedder.from_pretrained("all-minilm-l6-v2", dtype="float32", truncation=True)
    work.mkdir(parents=True, exist_ok=True)
    result = run_gecko(make_generator(seed=seed), work / "gecko.jsonl", {str(n): p for n, p in enumerate(chosen)},
                       minilm, GeckoOptions(), filter_embedder=minilm, top_k=3)  # fmt: skip
    print(result.drops.summary(), flush=True)
    return [TrainExample(e.query, e.positive, e.negatives, "gecko", QUESTION) for e in load_examples(result.output)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "retrieval")
    parser.add_argument("--wordnet", type=int, default=6000, help="WordNet questions")
    parser.add_argument("--negatives", type=int, default=3, help="hard negatives per example")
    parser.add_argument("--gecko", type=int, default=0, help="passages to write Gecko synthetic questions for")
    parser.add_argument("--work", type=Path, default=Path("runs/retrieval-mix"), help="resumable generation state")
    parser.add_argument("--only", nargs="+", choices=["faq", "docs", "wordnet", "gecko"], help="rebuild these only")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for source in (DOCS, WORDNET):
        if not source.is_dir():
            raise SystemExit(f"{source} is missing: apt-get install python3.11-doc wordnet-base")
    rng = random.Random(args.seed)
    faq, docs = python_docs()
    tasks = {"faq": faq, "docs": docs, "wordnet": wordnet(rng, args.wordnet)}
    if args.gecko:
        passages = sorted({e.positive for e in faq + docs})
        tasks["gecko"] = gecko(passages, args.gecko, args.work, args.seed)
    held_out = load_held_out(["bundled"])
    args.out.mkdir(parents=True, exist_ok=True)
    counts_file = args.out / "counts.json"
    counts = json.loads(counts_file.read_text(encoding="utf-8")) if counts_file.is_file() else {}
    for name, examples in tasks.items():
        if args.only and name not in args.only:
            continue
        kept, dropped = drop_leaks(examples, held_out)
        kept = mine_and_score(kept, args.negatives)
        counts[name] = {"built": len(examples), "dropped_as_leaks": len(dropped)}
        if name == "gecko":  # a question MiniLM finds unrelated to its positive is the generator's noise
            weak = [e for e in kept if e.scores[0] < GECKO_MIN_TEACHER]
            kept = [e for e in kept if e.scores[0] >= GECKO_MIN_TEACHER]
            counts[name]["dropped_below_teacher_minimum"] = len(weak)
        counts[name]["kept"] = len(kept)
        write_examples(args.out / f"{name}.jsonl.gz", kept)
        print(f"{name}: {len(kept)} examples ({len(dropped)} dropped as leaks)", flush=True)
    counts_file.write_text(json.dumps(counts, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
