"""Few-shot in-context-learning tasks and their prompts: what function vectors and the heads that carry a
task from the shots to the query are measured on (Todd et al., ICLR 2024, "Function Vectors in Large
Language Models"; Crosbie & Shutova, NAACL Findings 2025, for abstract pattern tasks).

Two kinds of task, all shipped and offline:

- ``abstract``: token-pattern tasks built from random token ids (no tokenizer needed, only ``vocab_size``).
  A prompt is ``[BOS] + shots x (instance + sep) + query``; every instance uses fresh tokens, the query is
  a partial instance whose next token is fixed by the rule:

  ``repetition``        instance ``a b a b``, query ``c d c`` -> ``d`` (verbatim induction inside the query);
  ``recursion``         instance ``a a b b``, query ``c c d`` -> ``d``;
  ``centre_embedding``  instance ``a b b a``, query ``c d d`` -> ``c``;
  ``category_pairs``    instance ``p q`` (p from a pool P, q from a disjoint pool Q, one pair per shot, all
                        distinct), query ``p'`` -> ``q'``, where ``p' q'`` is one of the shots (shots >= 2).

  Tokens are distinct within a prompt where the vocabulary allows (else only within an instance; the
  ``category_pairs`` pools always are). With a tokenizer they come from ordinary tokens: ids that decode to
  a space and letters only and encode back to themselves, among the first 10,000 ids where at least 256
  such ids lie there (rare tokens the model has barely seen are skipped), cached per tokenizer; without
  one, or with a tokenizer that has fewer than 256 such tokens (bytes, ids spelled as words), from
  ``range(vocab_size)``. ``bos_id`` and ``special_ids`` are never drawn. ``sep`` is the
  tokenizer's newline where it is one token, else a fixed id (the smallest usable one), kept out of the
  instances.
- ``natural``: ``(x, y)`` tables (``probes.task_tables``) in Todd et al.'s format: each shot
  ``"Q: {x}\\nA: {y}\\n\\n"``, then ``"Q: {x}\\nA:"``; the answer is the first token of ``" {y}"`` as it
  follows the prompt (rows whose ``" {y}"`` the tokenizer would merge into the prompt are skipped). Needs a
  tokenizer (``encode(text, add_special_tokens=False)`` and ``decode(ids)``, as HuggingFace's).

``shuffled=True`` is the function-vector control: each shot's label (``y``; for abstract tasks the token in
the answer's place, the instance's last) is replaced by another shot's, a seeded derangement, so no shot
keeps its own label; the query and its answer do not change. A seed fixes the prompts, and the clean and
shuffled prompts of one seed share every ``x`` and query, so they pair up.

Limits: the tables are short (48 to 72 rows) and English; the answer is the first token of a possibly
multi-token ``y``.
"""

from __future__ import annotations

import contextlib
import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from .._validate import check_choice, check_int, is_int
from ..errors import InputError
from .task_tables import TABLES

__all__ = ["TaskKind", "FewShotTask", "FewShotPrompts", "TASKS", "ABSTRACT_TASKS", "NATURAL_TASKS", "few_shot_prompts"]

TaskKind = Literal["abstract", "natural"]


@dataclass(frozen=True)
class FewShotTask:
    """A task: ``name``, ``kind``, a one-line ``description`` and, for natural tasks, its ``(x, y)`` rows.

    The shipped tasks are ``FewShotTask`` objects too (``probes.few_shot.TASKS``: the abstract
    ``repetition``, ``recursion``, ``centre_embedding``, ``category_pairs`` and the natural
    ``country_capital``, ``antonym``, ``capitalize``, ``first_letter``, ``english_french``,
    ``present_past``). Build one to measure a task of your own: ``kind="natural"`` with its ``(x, y)``
    pairs, shown as Todd et al.'s ``"Q: {x}\\nA: {y}"`` shots; it needs the model's tokenizer. Pass it
    wherever a task name is taken (``few_shot_accuracy``, ``fv_scores``, ``icl_heads``). Nothing is checked
    at construction; when the task is used, ``InputError`` for an abstract task whose name is not a shipped
    rule, a natural task without pairs, pairs that are not ``(x, y)`` tuples of strings, a row with an
    empty ``x`` or ``y``, or an ``x`` given twice.

    Args:
        name: the task's name, shown in results (an abstract task must use a shipped rule's name).
        kind: ``"abstract"`` (token-pattern tasks built from random ids, no tokenizer needed) or
            ``"natural"`` (``(x, y)`` rows rendered as text, needs a tokenizer).
        description: one line saying what the task asks, e.g. ``"give the word of opposite meaning"``.
        pairs: the ``(x, y)`` rows of a natural task, each a tuple of two non-empty strings with distinct
            ``x``; the answer is the first token of ``" {y}"``. Empty (default) for abstract tasks. At
            least ``shots + 1`` usable rows are needed.

    Examples:
        >>> from induction_nb import FewShotTask, HandBuiltInduction, few_shot_accuracy
        >>> task = FewShotTask("repetition", "abstract", "continue a b a b: after c d c comes d")
        >>> result = few_shot_accuracy(HandBuiltInduction(), [task], shots=4, n_prompts=8, n_boot=100)
        >>> result.mean_accuracy  # the hand-built induction head completes c d c -> d
        1.0

        A task of your own is natural, with its rows; it needs a model with a tokenizer:

        >>> plural = FewShotTask("plural", "natural", "give the plural of the noun",
        ...                      pairs=(("cat", "cats"), ("dog", "dogs"), ("box", "boxes"), ("day", "days")))
        >>> plural.kind, len(plural.pairs)
        ('natural', 4)
        >>> from induction_nb import load_model  # doctest: +SKIP
        >>> few_shot_accuracy(load_model(), [plural], shots=3).mean_accuracy  # doctest: +SKIP
    """

    name: str
    kind: TaskKind
    description: str
    pairs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class FewShotPrompts:
    """``n`` prompts of one task. ``tokens`` ``[n, seq]`` long, right-padded (the pads follow the real tokens,
    so a causal model needs no mask); ``last`` ``[n]``: the index of each prompt's final real token (the
    query's, which predicts the answer); ``answer`` ``[n]``: the answer's first token id; ``shuffled``: the
    shots' labels were deranged (the control)."""

    task: str
    shots: int
    tokens: torch.Tensor
    last: torch.Tensor
    answer: torch.Tensor
    shuffled: bool


# instance patterns over an instance's two tokens (0, 1); the query is the pattern less its last token
_PATTERNS = {"repetition": (0, 1, 0, 1), "recursion": (0, 0, 1, 1), "centre_embedding": (0, 1, 1, 0)}
_ABSTRACT = {
    "repetition": "continue a b a b: after c d c comes d",
    "recursion": "continue a a b b: after c c d comes d",
    "centre_embedding": "close the mirror a b b a: after c d d comes c",
    "category_pairs": "give the token paired with the query's token in an earlier shot (p q pairs)",
}
_NATURAL = {
    "country_capital": "name the capital city of the country",
    "antonym": "give the word of opposite meaning",
    "capitalize": "repeat the word with its first letter in upper case",
    "first_letter": "give the first letter of the word",
    "english_french": "translate the English word into French",
    "present_past": "give the simple past of the verb",
}
ABSTRACT_TASKS: tuple[str, ...] = tuple(_ABSTRACT)
NATURAL_TASKS: tuple[str, ...] = tuple(_NATURAL)
TASKS: dict[str, FewShotTask] = {
    **{name: FewShotTask(name, "abstract", text) for name, text in _ABSTRACT.items()},
    **{name: FewShotTask(name, "natural", text, TABLES[name]) for name, text in _NATURAL.items()},
}

_WORD = re.compile(r"^ [A-Za-z]+$")
_COMMON, _MIN_COMMON = 10_000, 256
_POOLS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def few_shot_prompts(
    task: str | FewShotTask,
    *,
    shots: int = 10,
    n_prompts: int = 32,
    seed: int = 0,
    tokenizer: Any = None,
    vocab_size: int | None = None,
    bos_id: int | None = None,
    special_ids: Sequence[int] = (),
    shuffled: bool = False,
    pad_id: int = 0,
) -> FewShotPrompts:
    """``n_prompts`` prompts of ``task`` (a name in ``TASKS`` or a ``FewShotTask``) with ``shots`` solved
    examples each (see the module docstring for the forms). Seeded by ``seed`` alone (a private
    ``torch.Generator``). ``tokenizer``: needed for natural tasks; ``vocab_size``: the model's vocabulary
    (abstract tasks without a tokenizer need it); ``bos_id``: prepended when given; ``special_ids``: never
    drawn as abstract tokens; ``pad_id``: fills ``tokens`` after each prompt. ``InputError`` for an unknown
    task, too few shots or prompts, a natural task without a tokenizer, a table or vocabulary too small."""
    task = _resolve(task)
    minimum = 2 if task.name == "category_pairs" or shuffled else 1
    shots = check_int("shots", shots, 1)
    if shots < minimum:
        why = "a derangement of the labels" if shuffled else "the query must repeat one of several shots"
        raise InputError(f"shots={shots} is too few for {task.name!r} (shuffled={shuffled}): {why} needs shots >= 2")
    n_prompts = check_int("n_prompts", n_prompts, 1)
    seed, pad_id = check_int("seed", seed), check_int("pad_id", pad_id, 0)
    bos = [] if bos_id is None else [check_int("bos_id", bos_id, 0)]
    if vocab_size is not None:
        vocab_size = check_int("vocab_size", vocab_size, 1)
    if not isinstance(special_ids, (Sequence, torch.Tensor)) or isinstance(special_ids, str):
        raise InputError(f"special_ids must be a list of token ids, got {special_ids!r}")
    specials = special_ids.tolist() if isinstance(special_ids, torch.Tensor) else list(special_ids)
    if not all(is_int(i) for i in specials):
        raise InputError(f"special_ids must hold integer token ids, got {specials!r:.80}")
    g = torch.Generator().manual_seed(seed)
    if task.kind == "natural":
        rows, answers = _natural(task, shots, n_prompts, g, tokenizer, bos, bool(shuffled), vocab_size)
    else:
        avoid = set(bos) | {int(i) for i in specials}
        rows, answers = _abstract(task.name, shots, n_prompts, g, tokenizer, vocab_size, bos, avoid, bool(shuffled))
    tokens = torch.full((n_prompts, max(map(len, rows))), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    last = torch.tensor([len(r) - 1 for r in rows], dtype=torch.long)
    return FewShotPrompts(task.name, shots, tokens, last, torch.tensor(answers, dtype=torch.long), bool(shuffled))


def _resolve(task: Any) -> FewShotTask:
    """A shipped task by name, or a user's ``FewShotTask`` checked for what its kind needs."""
    if isinstance(task, str):
        if task not in TASKS:
            raise InputError(f"unknown few-shot task {task!r}; use one of {', '.join(TASKS)}")
        return TASKS[task]
    if not isinstance(task, FewShotTask):
        raise InputError(f"task must be a task name or a FewShotTask, got {type(task).__name__}")
    check_choice("task kind", task.kind, ("abstract", "natural"))
    if task.kind == "abstract" and task.name not in _ABSTRACT:
        raise InputError(
            f"abstract task {task.name!r} has no rule here; abstract tasks are {', '.join(ABSTRACT_TASKS)} "
            "(a task of your own needs kind='natural' and pairs)"
        )
    if task.kind == "natural":
        if not task.pairs:
            raise InputError(f"natural task {task.name!r} has no pairs: pass pairs=((x, y), ...) with its rows")
        if not all(isinstance(p, tuple) and len(p) == 2 and all(isinstance(s, str) for s in p) for p in task.pairs):
            raise InputError(f"pairs of task {task.name!r} must be (x, y) tuples of strings")
        empty = [p for p in task.pairs if not p[0].strip() or not p[1].strip()]
        if empty:
            raise InputError(f"task {task.name!r} has rows with an empty x or y ({empty[:3]}): every row needs both")
        xs = [x for x, _ in task.pairs]
        if len(set(xs)) < len(xs):
            twice = sorted({x for x in xs if xs.count(x) > 1})
            raise InputError(f"task {task.name!r} has x values more than once ({twice[:5]}): keep one row each")
    return task


def _derangement(g: torch.Generator, labels: Sequence[Any]) -> list[int]:
    """A seeded permutation ``p`` with ``labels[p[i]] != labels[i]`` for every ``i`` (by value where 100
    draws find one, else only ``p[i] != i``); ``len(labels) >= 2``."""
    n = len(labels)
    for _ in range(100):
        p = torch.randperm(n, generator=g).tolist()
        if all(labels[p[i]] != labels[i] for i in range(n)):
            return p
    order, p = torch.randperm(n, generator=g).tolist(), [0] * n  # a cycle through a random order
    for k in range(n):
        p[order[k]] = order[(k + 1) % n]
    return p


def _encode(tokenizer: Any, text: str) -> list[int]:
    return [int(i) for i in tokenizer.encode(text, add_special_tokens=False)]


def _answer_id(tokenizer: Any, prompt: list[int], text: str, y: str) -> int | None:
    """The id that follows ``prompt`` (``text`` encoded) in ``text + " " + y``, or ``None`` where the
    tokenizer merges across the boundary (the prompt's ids are not a prefix)."""
    full = _encode(tokenizer, text + " " + y)
    if len(full) <= len(prompt) or full[: len(prompt)] != prompt:
        return None
    return full[len(prompt)]


def _natural(task, shots, n_prompts, g, tokenizer, bos, shuffled, vocab_size):
    """Prompts and answers of a natural task (token lists, answer ids)."""
    if tokenizer is None:
        raise InputError(
            f"natural task {task.name!r} is text: pass tokenizer= (the model's, e.g. model.tokenizer); only the "
            f"abstract tasks ({', '.join(ABSTRACT_TASKS)}) work from vocab_size alone"
        )
    rows = []
    for x, y in task.pairs:  # the query alone: rows whose answer the tokenizer merges into "A:" are skipped
        text = f"Q: {x}\nA:"
        if _answer_id(tokenizer, _encode(tokenizer, text), text, y) is not None:
            rows.append((x, y))
    if len(rows) < shots + 1:
        raise InputError(
            f"task {task.name!r} has {len(rows)} usable rows, fewer than shots + 1 = {shots + 1} (a task with fewer "
            f"prompts than shots: each prompt needs {shots} shots and a different query row): use shots <= "
            f"{len(rows) - 1} or add rows"
        )
    out, answers = [], []
    for _ in range(n_prompts):
        order = torch.randperm(len(rows), generator=g).tolist()
        shot_rows, (xq, yq) = [rows[k] for k in order[:shots]], rows[order[shots]]
        perm = _derangement(g, [y for _, y in shot_rows])  # drawn for clean prompts too: same stream
        labels = [shot_rows[p][1] for p in perm] if shuffled else [y for _, y in shot_rows]
        text = "".join(f"Q: {x}\nA: {y}\n\n" for (x, _), y in zip(shot_rows, labels)) + f"Q: {xq}\nA:"
        ids = _encode(tokenizer, text)
        answer = _answer_id(tokenizer, ids, text, yq)
        if answer is None:
            raise InputError(f"the tokenizer merges the answer {yq!r} into the prompt of task {task.name!r}")
        if vocab_size is not None and max(ids + [answer]) >= vocab_size:
            raise InputError(f"the tokenizer gives ids >= vocab_size={vocab_size}: pass the model's vocab_size")
        out.append(bos + ids)
        answers.append(answer)
    return out, answers


def _token_pool(tokenizer: Any) -> list[int]:
    """Ordinary word tokens of ``tokenizer`` (a space and letters, encoding back to themselves), cached."""
    try:
        return _POOLS[tokenizer]
    except (KeyError, TypeError):
        pass
    try:
        size = len(tokenizer)
    except TypeError:
        size = int(tokenizer.vocab_size)
    words = [i for i in range(size) if _WORD.match(tokenizer.decode([i]) or "")]
    words = [i for i in words if _encode(tokenizer, tokenizer.decode([i])) == [i]]
    common = [i for i in words if i < _COMMON]
    pool = common if len(common) >= _MIN_COMMON else words
    with contextlib.suppress(TypeError):  # not weak-referenceable: recomputed each call
        _POOLS[tokenizer] = pool
    return pool


def _abstract(name, shots, n_prompts, g, tokenizer, vocab_size, bos, avoid, shuffled):
    """Prompts and answers of an abstract task (token lists, answer ids)."""
    if tokenizer is None and vocab_size is None:
        raise InputError(f"abstract task {name!r} needs vocab_size= (the model's vocabulary) or tokenizer=")
    candidates = range(vocab_size) if tokenizer is None else _token_pool(tokenizer)
    if tokenizer is not None and len(candidates) < _MIN_COMMON and vocab_size is not None:
        candidates = range(vocab_size)  # a tokenizer with few word tokens (bytes, ids as words): every id
    pool = [i for i in candidates if i not in avoid and (vocab_size is None or i < vocab_size)]
    newline = _encode(tokenizer, "\n") if tokenizer is not None else []
    if len(newline) == 1 and (vocab_size is None or newline[0] < vocab_size):
        sep = newline[0]
    else:
        sep = min(pool, default=None)
    pool = torch.tensor([i for i in pool if i != sep], dtype=torch.long)
    pairs = name == "category_pairs"
    need = 2 * shots if pairs else 2 * (shots + 1)
    if len(pool) < (need if pairs else 2):
        raise InputError(
            f"the vocabulary has {len(pool)} usable token ids (after bos_id, special_ids and the separator), too "
            f"few for {name!r} with shots={shots}, which needs {need if pairs else 2} distinct ids: use fewer "
            "shots or a larger vocab_size"
        )
    pattern = _PATTERNS.get(name, (0, 1))
    out, answers = [], []
    for _ in range(n_prompts):
        if len(pool) >= need:
            inst = pool[torch.randperm(len(pool), generator=g)[:need]].view(-1, 2).tolist()
        else:  # distinct within each instance only
            inst = [pool[torch.randperm(len(pool), generator=g)[:2]].tolist() for _ in range(shots + 1)]
        if pairs:  # the query repeats one shot's pair
            inst.append(inst[int(torch.randint(shots, (1,), generator=g))])
        labels = [inst[i][pattern[-1]] for i in range(shots)]
        perm = _derangement(g, labels)  # drawn for clean prompts too: same stream
        row = list(bos)
        for i in range(shots):
            row += [inst[i][k] for k in pattern[:-1]] + [labels[perm[i]] if shuffled else labels[i], sep]
        row += [inst[shots][k] for k in pattern[:-1]]
        out.append(row)
        answers.append(inst[shots][pattern[-1]])
    return out, answers
