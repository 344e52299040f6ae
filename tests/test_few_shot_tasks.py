"""probes.few_shot: the shipped few-shot tasks, the rules their prompts follow (checked on the ids), padding,
seeding, the shuffled-label control, and every error, on the embedded SmolLM2's real tokenizer."""

import ast
import os
import re
from pathlib import Path

import pytest
import torch

from induction_nb.errors import InputError
from induction_nb.probes import few_shot
from induction_nb.probes.few_shot import (
    ABSTRACT_TASKS,
    NATURAL_TASKS,
    TASKS,
    FewShotPrompts,
    FewShotTask,
    few_shot_prompts,
)
from induction_nb.probes.task_tables import TABLES

BOS, NEWLINE = 1, 198  # SmolLM2's <|im_start|> and "\n"
PATTERNS = {"repetition": (0, 1, 0, 1), "recursion": (0, 0, 1, 1), "centre_embedding": (0, 1, 1, 0)}


class _Tokenizer:
    """The embedded model's tokenizer.json through the ``tokenizers`` library, with the HuggingFace methods
    the builder uses (loads in a tenth of a second; ``transformers`` takes seconds to import)."""

    def __init__(self, path: Path):
        import tokenizers

        self._tok = tokenizers.Tokenizer.from_file(str(path))

    def encode(self, text, add_special_tokens=True):
        return self._tok.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids):
        return self._tok.decode(list(ids))

    def __len__(self):
        return self._tok.get_vocab_size()


@pytest.fixture(scope="module")
def tok():
    """SmolLM2's tokenizer, from the converted embedded model (converted once per machine and cached)."""
    from induction_nb import ModelLoadError
    from induction_nb.engine.models import default_model_path, embedded_model_folder

    try:
        return _Tokenizer(embedded_model_folder() / "tokenizer.json")
    except ModelLoadError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(e))
    except OSError:  # the cache cannot be written: read the GGUF file (slower)
        from transformers import AutoTokenizer

        path = default_model_path()
        return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


def _real(p: FewShotPrompts, i: int) -> list[int]:
    return p.tokens[i, : int(p.last[i]) + 1].tolist()


def _instances(ids: list[int], sep: int) -> tuple[list[list[int]], list[int]]:
    """The shots (each without its separator) and the query of an abstract prompt (BOS stripped)."""
    parts, cur = [], []
    for t in ids:
        if t == sep:
            parts.append(cur)
            cur = []
        else:
            cur.append(t)
    return parts, cur


def _shots(tok, p: FewShotPrompts, i: int) -> tuple[list[tuple[str, str]], str]:
    """A natural prompt's (x, label) shots and its query x, read back from the text."""
    text = tok.decode(_real(p, i))
    blocks = text.split("\n\n")
    shots = [re.fullmatch(r"Q: (.*)\nA: (.*)", b, re.S).groups() for b in blocks[:-1]]
    query = re.fullmatch(r"Q: (.*)\nA:", blocks[-1], re.S).group(1)
    return shots, query


# ---------------------------------------------------------------- the shipped tasks


def test_shipped_tasks_and_tables():
    assert ABSTRACT_TASKS == ("repetition", "recursion", "centre_embedding", "category_pairs")
    assert NATURAL_TASKS == (
        "country_capital",
        "antonym",
        "capitalize",
        "first_letter",
        "english_french",
        "present_past",
    )
    assert list(TASKS) == [*ABSTRACT_TASKS, *NATURAL_TASKS]
    for name, task in TASKS.items():
        assert task.name == name and task.description and "\n" not in task.description
        assert (task.kind == "natural") == (name in NATURAL_TASKS) == bool(task.pairs)
    for name, rows in TABLES.items():
        xs = [x for x, _ in rows]
        assert len(rows) >= 40 and len(set(xs)) == len(xs), name
        assert all(x.strip() == x and y.strip() == y and x and y for x, y in rows), name
        assert TASKS[name].pairs == rows
    assert all(y == x.capitalize() and x.islower() for x, y in TABLES["capitalize"])
    assert all(y == x[0] for x, y in TABLES["first_letter"])
    words = [w for row in TABLES["antonym"] for w in row]
    assert len(set(words)) == len(words)  # no shot gives a query's answer away
    assert ("France", "Paris") in TABLES["country_capital"] and ("go", "went") in TABLES["present_past"]


def test_the_package_layer_imports_no_model_library():
    for module in (few_shot, __import__("induction_nb.probes.task_tables", fromlist=["x"])):
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
        assert not {n.split(".")[0] for n in names} & {"nnsight", "transformers", "tokenizers", "induction_nb"}
        ours = {(n.level, n.module) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level > 0}
        assert ours <= {(2, "_validate"), (2, "errors"), (2, "metrics"), (1, "task_tables")}


# ---------------------------------------------------------------- abstract tasks


@pytest.mark.parametrize("name", ABSTRACT_TASKS)
def test_abstract_rules_hold_on_the_ids_with_the_tokenizer(tok, name):
    p = few_shot_prompts(name, shots=5, n_prompts=8, seed=3, tokenizer=tok, bos_id=BOS, special_ids=[0, 2])
    pattern = PATTERNS.get(name, (0, 1))
    assert p.tokens.shape == (8, 1 + 5 * (len(pattern) + 1) + len(pattern) - 1)
    assert (p.last == p.tokens.shape[1] - 1).all()  # one length: nothing padded
    for i in range(8):
        ids = _real(p, i)
        assert ids[0] == BOS and BOS not in ids[1:] and 0 not in ids and 2 not in ids
        shots, query = _instances(ids[1:], NEWLINE)
        assert len(shots) == 5 and all(len(s) == len(pattern) for s in shots)
        for inst in [*shots, query]:  # ordinary word tokens: a space and letters
            assert all(re.fullmatch(r" [A-Za-z]+", tok.decode([t])) for t in inst)
        answer = int(p.answer[i])
        _check_rule(name, shots, query, answer)


def _check_rule(name, shots, query, answer):
    if name == "category_pairs":
        (q,) = query
        assert [s[1] for s in shots if s[0] == q] == [answer]  # the pair shown in context
        tokens = [t for s in shots for t in s]
        assert len(set(tokens)) == len(tokens)  # P and Q disjoint, one pair per shot
        return
    a, b = query[0], query[-1]
    if name == "repetition":
        assert query == [a, query[1], a] and answer == query[1] != a  # the token after the query's first
    elif name == "recursion":
        assert query == [a, a, b] and answer == b != a
    else:
        assert query == [a, b, b] and answer == a != b
    for s in shots:
        pair = list(dict.fromkeys(s))  # the instance's two tokens, in order of appearance
        assert len(pair) == 2 and [pair[k] for k in PATTERNS[name]] == s
    fresh = [t for s in [*shots, query] for t in dict.fromkeys(s)]
    assert len(set(fresh)) == len(fresh)  # every instance uses fresh tokens


@pytest.mark.parametrize("name", ABSTRACT_TASKS)
def test_abstract_tasks_from_a_vocabulary_size_alone(name):
    p = few_shot_prompts(name, shots=4, n_prompts=5, vocab_size=50, special_ids=[0, 1])
    sep = 2  # the smallest usable id
    pattern = PATTERNS.get(name, (0, 1))
    for i in range(5):
        ids = _real(p, i)
        assert 0 not in ids and 1 not in ids and max(ids) < 50
        shots, query = _instances(ids, sep)
        assert len(shots) == 4 and all(len(s) == len(pattern) for s in shots)
        _check_rule(name, shots, query, int(p.answer[i]))


def test_a_small_vocabulary_reuses_tokens_across_instances_only():
    p = few_shot_prompts("recursion", shots=6, n_prompts=4, vocab_size=6)  # 5 ids after the separator
    for i in range(4):
        shots, query = _instances(_real(p, i), 0)
        assert all(s[0] == s[1] != s[2] == s[3] for s in shots) and query[0] == query[1] != query[2]
        assert int(p.answer[i]) == query[2]


# ---------------------------------------------------------------- natural tasks


@pytest.mark.parametrize("name", NATURAL_TASKS)
def test_natural_answers_are_the_first_token_of_the_label(tok, name):
    p = few_shot_prompts(name, shots=4, n_prompts=6, seed=1, tokenizer=tok, bos_id=BOS)
    table = dict(TABLES[name])
    for i in range(6):
        ids = _real(p, i)
        assert ids[0] == BOS and tok.decode([ids[-1]]) == ":"
        shots, query = _shots(tok, p, i)
        assert len(shots) == 4 and all(table[x] == y for x, y in shots)
        assert len({x for x, _ in shots} | {query}) == 5  # distinct rows, the query not among the shots
        prompt, label = ids[1:], tok.encode(" " + table[query], add_special_tokens=False)
        text = tok.decode(prompt)
        assert tok.encode(text + " " + table[query], add_special_tokens=False) == prompt + label  # no merge
        assert int(p.answer[i]) == label[0]


def test_right_padding_and_last(tok):
    p = few_shot_prompts("country_capital", shots=3, n_prompts=16, tokenizer=tok, pad_id=5)
    lengths = p.last + 1
    assert p.tokens.shape[1] == int(lengths.max()) and len(set(lengths.tolist())) > 1  # some padded
    for i in range(16):
        n = int(lengths[i])
        assert (p.tokens[i, n:] == 5).all()
        assert p.tokens[i, :n].tolist() == tok.encode(tok.decode(p.tokens[i, :n].tolist()), add_special_tokens=False)
        assert tok.decode(p.tokens[i, :n].tolist()).endswith("\nA:")
    assert p.tokens.dtype == p.last.dtype == p.answer.dtype == torch.long
    assert (p.task, p.shots, p.shuffled) == ("country_capital", 3, False)


# ---------------------------------------------------------------- seeding and the control


@pytest.mark.parametrize("name", ["antonym", "repetition", "category_pairs"])
def test_seeding(tok, name):
    make = lambda seed: few_shot_prompts(name, shots=4, n_prompts=6, seed=seed, tokenizer=tok)  # noqa: E731
    a = make(7)
    torch.manual_seed(123)  # the global RNG plays no part
    b = make(7)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.answer, b.answer) and torch.equal(a.last, b.last)
    c = make(8)
    assert not (a.tokens.shape == c.tokens.shape and torch.equal(a.tokens, c.tokens))


def test_the_global_rng_is_left_alone():
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    few_shot_prompts("repetition", vocab_size=100, shots=3, n_prompts=4, shuffled=True)
    assert torch.equal(before, torch.random.get_rng_state())


@pytest.mark.parametrize("name", NATURAL_TASKS)
def test_shuffled_natural_labels_are_a_derangement(tok, name):
    clean = few_shot_prompts(name, shots=5, n_prompts=8, seed=2, tokenizer=tok)
    mixed = few_shot_prompts(name, shots=5, n_prompts=8, seed=2, tokenizer=tok, shuffled=True)
    assert mixed.shuffled and torch.equal(clean.answer, mixed.answer)
    for i in range(8):
        (shots, query), (mshots, mquery) = _shots(tok, clean, i), _shots(tok, mixed, i)
        assert query == mquery and [x for x, _ in shots] == [x for x, _ in mshots]
        labels, mlabels = [y for _, y in shots], [y for _, y in mshots]
        assert sorted(labels) == sorted(mlabels)
        assert all(y != m for y, m in zip(labels, mlabels))  # no shot keeps its own label
        assert tok.decode(_real(clean, i)).rsplit("\n\n", 1)[1] == tok.decode(_real(mixed, i)).rsplit("\n\n", 1)[1]


@pytest.mark.parametrize("name", ABSTRACT_TASKS)
def test_shuffled_abstract_labels_are_a_derangement(name):
    kw = dict(shots=6, n_prompts=5, seed=4, vocab_size=200)
    clean, mixed = few_shot_prompts(name, **kw), few_shot_prompts(name, shuffled=True, **kw)
    assert torch.equal(clean.answer, mixed.answer) and torch.equal(clean.last, mixed.last)
    changed = clean.tokens != mixed.tokens
    for i in range(5):
        shots, query = _instances(_real(clean, i), 0)
        mshots, mquery = _instances(_real(mixed, i), 0)
        assert query == mquery
        assert [s[:-1] for s in shots] == [s[:-1] for s in mshots]  # only the labels (last tokens) move
        labels, mlabels = [s[-1] for s in shots], [s[-1] for s in mshots]
        assert sorted(labels) == sorted(mlabels) and all(a != b for a, b in zip(labels, mlabels))
    assert int(changed.sum()) == 5 * 6


def test_a_task_of_ones_own():
    rows = tuple((f"{n}", f"{n + 1}") for n in range(10, 30))
    task = FewShotTask("successor", "natural", "add one", rows)
    p = few_shot_prompts(task, shots=3, n_prompts=2, tokenizer=_Plain())
    assert p.task == "successor" and p.tokens.shape[0] == 2


class _Plain:
    """A character-level tokenizer: one id per character (code point)."""

    def encode(self, text, add_special_tokens=True):
        return [ord(c) for c in text]

    def decode(self, ids):
        return "".join(map(chr, ids))

    def __len__(self):
        return 0x110000


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "task, kw, match",
    [
        ("nope", {"vocab_size": 100}, r"unknown few-shot task 'nope'; use one of repetition, .*present_past"),
        ("repetition", {"vocab_size": 100, "shots": 0}, r"shots must be a positive integer, got 0"),
        ("category_pairs", {"vocab_size": 100, "shots": 1}, r"shots=1 is too few.*shots >= 2"),
        ("repetition", {"vocab_size": 100, "shots": 1, "shuffled": True}, r"derangement.*shots >= 2"),
        ("repetition", {"vocab_size": 100, "n_prompts": 0}, r"n_prompts must be a positive integer"),
        ("antonym", {"vocab_size": 100}, r"natural task 'antonym' is text: pass tokenizer="),
        ("repetition", {}, r"needs vocab_size= .* or tokenizer="),
        ("repetition", {"vocab_size": 2}, r"1 usable token ids.*too few.*larger vocab_size"),
        ("category_pairs", {"vocab_size": 10, "shots": 5}, r"too few for 'category_pairs' with shots=5.*10 distinct"),
        (FewShotTask("mine", "natural", "d"), {}, r"'mine' has no pairs: pass pairs="),
        (FewShotTask("mine", "abstract", "d"), {"vocab_size": 100}, r"no rule here.*kind='natural'"),
        (FewShotTask("d", "natural", "d", (("a", "b"), ("a", "c"))), {}, r"more than once \(\['a'\]\)"),
        ("repetition", {"vocab_size": 100, "special_ids": "ab"}, r"special_ids must be a list"),
        ("repetition", {"vocab_size": 100, "bos_id": -1}, r"bos_id must be an integer >= 0"),
    ],
)
def test_errors(task, kw, match):
    with pytest.raises(InputError, match=match):
        few_shot_prompts(task, **kw)


def test_a_table_shorter_than_the_shots(tok):
    with pytest.raises(InputError, match=r"'antonym' has \d+ usable rows, fewer than shots \+ 1 = 101.*shots <="):
        few_shot_prompts("antonym", shots=100, tokenizer=tok)
    small = FewShotTask("tiny", "natural", "d", (("a", "b"), ("c", "d")))
    with pytest.raises(InputError, match=r"a task with fewer prompts than shots"):
        few_shot_prompts(small, shots=2, tokenizer=tok)
