"""Count-based n-gram language model over token ids (book §2.5), smoothed with interpolated Kneser-Ney.

The book's count-based model estimates ``P(w | u, v)`` from trigram counts and *backs off* to bigram and
unigram counts when the trigram was never seen. Backing off that way does not give a proper distribution:
probabilities of seen and unseen continuations are taken from different estimates and do not sum to 1,
and a token never seen in training gets probability 0 (infinite perplexity). Kneser-Ney smoothing keeps
the idea and makes it fair:

* every seen count is *discounted* by a small amount ``D``; the mass taken away is spread over the whole
  vocabulary through the next lower order (*interpolation*), down to a uniform distribution, so every
  token has a probability > 0 and every conditional distribution sums to exactly 1;
* lower orders are estimated from *continuation counts* ``N1+(• w)`` (in how many different contexts a
  token was seen) rather than raw counts: they are only consulted when the longer context says little,
  and then "how many contexts does ``w`` follow" is the better guess ("San Francisco" effect).

With ``discount=None`` (the default) the discounts are the *modified* Kneser-Ney ones of Chen & Goodman
(1998): three discounts per order, for n-grams seen once, twice and three or more times, estimated from
the counts-of-counts of that order. Sequence starts follow KenLM: every sequence is left-padded with
``order - 1`` start symbols, so the first token is predicted from a context of start symbols (the n-gram
counterpart of a BOS token), and lower-order n-grams that begin with the start symbol keep their raw
counts, since nothing can precede them.

Counts are kept in sorted numpy arrays and looked up with ``np.searchsorted``; fitting on a million tokens
and scoring a hundred thousand takes well under a few seconds on one core.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


__all__ = ["NGramLanguageModel", "modified_kneser_ney_discounts"]

_FORMAT_NAME = "hf_hundredpage.ngram.NGramLanguageModel"
_FORMAT_VERSION = 1
# Used for a level whose counts-of-counts are too sparse for the modified Kneser-Ney estimate.
_FALLBACK_DISCOUNT = 0.75


def modified_kneser_ney_discounts(counts: np.ndarray) -> tuple[float, float, float] | None:
    """Chen & Goodman's discounts ``(D1, D2, D3+)`` estimated from the n-gram counts of one order.

    With ``n_c`` the number of n-grams seen exactly ``c`` times and ``Y = n_1 / (n_1 + 2 n_2)``:
    ``D1 = 1 - 2Y n_2/n_1``, ``D2 = 2 - 3Y n_3/n_2``, ``D3+ = 3 - 4Y n_4/n_3``.

    Returns ``None`` when the estimate does not exist (one of ``n_1 .. n_4`` is zero, which happens on tiny
    corpora) or is not a valid discount (each ``D_c`` must lie in ``(0, c]`` so that discounted counts
    stay non-negative and every distribution keeps some mass for unseen tokens).
    """
    counts = np.asarray(counts)
    n1, n2, n3, n4 = (int(np.count_nonzero(counts == c)) for c in (1, 2, 3, 4))
    if min(n1, n2, n3, n4) == 0:
        return None
    y = n1 / (n1 + 2 * n2)
    discounts = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    if not all(0.0 < d <= c for c, d in enumerate(discounts, start=1)):
        return None
    return discounts


def _validate_discount(discount) -> float | tuple[float, float, float] | None:
    if discount is None:
        return None
    if isinstance(discount, (int, float, np.number)) and not isinstance(discount, bool):
        if not 0.0 < float(discount) <= 1.0:
            raise ValueError(f"discount must be in (0, 1], a tuple (D1, D2, D3+) or None, got {discount!r}")
        return float(discount)
    try:
        discounts = tuple(float(d) for d in discount)
    except (TypeError, ValueError):
        raise ValueError(f"discount must be a number, a tuple (D1, D2, D3+) or None, got {discount!r}") from None
    if len(discounts) != 3 or not all(0.0 < d <= c for c, d in enumerate(discounts, start=1)):
        raise ValueError(
            f"discount tuple must be (D1, D2, D3+) with 0 < D1 <= 1, 0 < D2 <= 2, 0 < D3+ <= 3, got {discount!r}"
        )
    return discounts


def _encode(rows: np.ndarray) -> np.ndarray:
    """One sortable scalar per row: the row as big-endian uint32 bytes, so byte order == lexicographic order."""
    rows = np.ascontiguousarray(rows, dtype=">u4")
    return rows.view(f"S{4 * rows.shape[1]}").reshape(rows.shape[0])


@dataclass
class _Level:
    """The n-grams of one order ``k >= 2``: adjusted counts and the statistics of their contexts.

    Rows of ``grams`` are sorted lexicographically, so the n-grams that share a context are contiguous:
    the ``i``-th context owns rows ``starts[i]:ends[i]``.
    """

    grams: np.ndarray  # (m, k) token ids, sorted
    counts: np.ndarray  # (m,) adjusted counts (raw counts at the highest order)
    discounts: np.ndarray  # (4,) discount for a count of 0, 1, 2, 3+ (the first is 0)
    keys: np.ndarray  # (m,) _encode(grams)
    context_keys: np.ndarray  # (c,) _encode(context), sorted
    starts: np.ndarray  # (c,)
    ends: np.ndarray  # (c,)
    totals: np.ndarray  # (c,) sum of the counts after the context
    backoff_mass: np.ndarray  # (c,) D1 N1(h•) + D2 N2(h•) + D3+ N3+(h•): what the discounts take away

    @classmethod
    def build(cls, grams: np.ndarray, counts: np.ndarray, discounts: np.ndarray) -> _Level:
        keys = _encode(grams)
        context_keys = _encode(grams[:, :-1])
        new_context = np.flatnonzero(context_keys[1:] != context_keys[:-1]) + 1
        starts = np.concatenate([[0], new_context]).astype(np.int64)
        ends = np.concatenate([new_context, [len(grams)]]).astype(np.int64)
        discounted = discounts[np.minimum(counts, 3)]
        return cls(
            grams=grams,
            counts=counts,
            discounts=discounts,
            keys=keys,
            context_keys=context_keys[starts],
            starts=starts,
            ends=ends,
            totals=np.add.reduceat(counts, starts).astype(np.float64),
            backoff_mass=np.add.reduceat(discounted, starts),
        )

    def find_contexts(self, contexts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indices of ``contexts`` (rows of ``k - 1`` ids) among the seen contexts, and whether each was seen."""
        return _lookup(self.context_keys, _encode(contexts))

    def find_counts(self, grams: np.ndarray) -> np.ndarray:
        """Adjusted counts of ``grams`` (rows of ``k`` ids); 0 for n-grams never seen."""
        index, found = _lookup(self.keys, _encode(grams))
        return np.where(found, self.counts[index], 0)


def _lookup(sorted_keys: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(sorted_keys) == 0:
        return np.zeros(len(queries), dtype=np.int64), np.zeros(len(queries), dtype=bool)
    index = np.minimum(np.searchsorted(sorted_keys, queries), len(sorted_keys) - 1)
    return index, sorted_keys[index] == queries


class NGramLanguageModel:
    """Interpolated (modified) Kneser-Ney n-gram language model over token ids (book §2.5).

    For a context ``h`` of ``order - 1`` tokens and a token ``w``, with ``h'`` the context without its
    first token, ``c(hw)`` the count of the n-gram (a raw count at the highest order, a continuation count
    ``N1+(• hw)`` at lower orders), ``c(h) = Σ_w c(hw)`` and ``D(c)`` the discount for a count ``c``
    (``D(0) = 0``)::

        P(w | h) = (max(c(hw) - D(c(hw)), 0) + γ(h) · P(w | h')) / c(h),   γ(h) = Σ_w D(c(hw))
        P(w | h) = P(w | h')                                               if c(h) = 0 (unseen context)
        P(w)     = (max(c(w) - D(c(w)), 0) + γ · 1 / vocab_size) / Σ_w c(w)  (the order-1 level)

    so each conditional distribution over the ``vocab_size`` tokens sums to 1 and every token, seen or
    not, has a probability > 0. With ``order=1`` the model is the absolute-discounting unigram model above
    with raw counts.

    Sequences are scored from their first token: the model pads every sequence on the left with
    ``order - 1`` start symbols (the id ``vocab_size``, which is a context symbol only and never
    predicted), so ``score([a, b, c]) = -log P(a | <s> <s>) - log P(b | <s> a) - log P(c | a b)`` for a
    trigram model. A context shorter than ``order - 1`` tokens given to :meth:`log_prob` or
    :meth:`next_token_distribution` is likewise taken to be the start of a sequence.

    Args:
        order: the ``n`` of the n-gram (3 for the book's trigram model).
        vocab_size: number of token ids; tokens are ``0 .. vocab_size - 1``. Ids never seen in training
            still receive probability mass.
        discount: ``None`` (default) for modified Kneser-Ney: three discounts per order estimated from
            its counts-of-counts with :func:`modified_kneser_ney_discounts` (an order whose
            counts-of-counts are too sparse for the estimate, as on toy corpora, uses the single discount
            0.75). A number in ``(0, 1]`` for interpolated Kneser-Ney with that one discount everywhere. A
            tuple ``(D1, D2, D3+)`` with ``0 < D_c <= c`` for modified Kneser-Ney with these discounts at
            every order.

    Example:

    ```python
    >>> lm = NGramLanguageModel(order=3, vocab_size=4, discount=0.5).fit([[0, 1, 2], [0, 1, 1]])
    >>> round(float(np.exp(lm.log_prob([0, 1], 2))), 6)  # 55 / 128
    0.429688
    >>> round(float(lm.next_token_distribution([3, 3]).sum()), 12)
    1.0

    ```
    """

    def __init__(
        self,
        order: int = 3,
        vocab_size: int = 8192,
        discount: float | tuple[float, float, float] | None = None,
    ):
        if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
            raise ValueError(f"order must be a positive integer (3 for a trigram model), got {order!r}")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)) or vocab_size < 1:
            raise ValueError(f"vocab_size must be a positive integer (len(tokenizer)), got {vocab_size!r}")
        if vocab_size >= 2**32 - 1:
            raise ValueError(f"vocab_size must be below 2**32 - 1, got {vocab_size}")
        self.order = int(order)
        self.vocab_size = int(vocab_size)
        self.discount = _validate_discount(discount)
        self.num_training_tokens = 0
        self._levels: dict[int, _Level] = {}
        self._unigram_grams: np.ndarray | None = None
        self._unigram_counts: np.ndarray | None = None
        self._unigram_discounts: np.ndarray | None = None
        self._unigram_probs: np.ndarray | None = None

    @property
    def start_id(self) -> int:
        """The start symbol that pads every sequence on the left; never predicted."""
        return self.vocab_size

    @property
    def is_fitted(self) -> bool:
        return self._unigram_probs is not None

    @property
    def discounts(self) -> dict[int, tuple[float, float, float]]:
        """The discounts ``(D1, D2, D3+)`` in use at each order ``1 .. order``."""
        self._check_fitted()
        result = {1: tuple(float(d) for d in self._unigram_discounts[1:])}
        result.update({k: tuple(float(d) for d in level.discounts[1:]) for k, level in self._levels.items()})
        return dict(sorted(result.items()))

    def __repr__(self) -> str:
        state = f"fitted on {self.num_training_tokens} tokens" if self.is_fitted else "not fitted"
        discount = "modified Kneser-Ney" if self.discount is None else f"discount={self.discount}"
        return f"{type(self).__name__}(order={self.order}, vocab_size={self.vocab_size}, {discount}; {state})"

    # ------------------------------------------------------------------ training

    def fit(self, sequences: Iterable[Sequence[int]]) -> NGramLanguageModel:
        """Count the n-grams of ``sequences`` (an iterable of token-id sequences) and build the model.

        Replaces whatever the model held before. Empty sequences are skipped. Returns ``self``.
        """
        if isinstance(sequences, np.ndarray) and sequences.ndim == 1 or (
            isinstance(sequences, Sequence) and len(sequences) > 0 and np.isscalar(sequences[0])
        ):
            raise ValueError("fit() takes a list of token-id sequences; wrap a single sequence as [sequence]")
        pad = np.full(self.order - 1, self.start_id, dtype=np.int64)
        windows, num_tokens = [], 0
        for sequence in sequences:
            ids = self._as_token_ids(sequence)
            if ids.size == 0:
                continue
            num_tokens += ids.size
            windows.append(sliding_window_view(np.concatenate([pad, ids]), self.order))
        if num_tokens == 0:
            raise ValueError("fit() got no tokens: pass a non-empty list of non-empty token-id sequences")
        rows = np.concatenate(windows)

        # Highest order: raw counts. Lower orders: continuation counts N1+(• g), except for n-grams that
        # begin with the start symbol, which cannot be extended to the left and keep their raw counts.
        _, first, raw_counts = np.unique(_encode(rows), return_index=True, return_counts=True)
        grams, counts = rows[first], raw_counts.astype(np.int64)
        counts_by_order = {self.order: (grams, counts)}
        for k in range(self.order - 1, 0, -1):
            suffixes = grams[:, 1:]
            contribution = np.where(suffixes[:, 0] == self.start_id, counts, 1)
            _, first, inverse = np.unique(_encode(suffixes), return_index=True, return_inverse=True)
            grams = suffixes[first]
            counts = np.bincount(inverse.reshape(-1), weights=contribution).astype(np.int64)
            counts_by_order[k] = (grams, counts)

        discounts = {k: self._discounts_for(counts) for k, (_, counts) in counts_by_order.items()}
        self.num_training_tokens = num_tokens
        self._build(counts_by_order, discounts)
        return self

    def _discounts_for(self, counts: np.ndarray) -> np.ndarray:
        if isinstance(self.discount, float):
            estimate = (self.discount,) * 3
        elif self.discount is not None:
            estimate = self.discount
        else:
            estimate = modified_kneser_ney_discounts(counts) or (_FALLBACK_DISCOUNT,) * 3
        return np.array((0.0, *estimate), dtype=np.float64)

    def _build(
        self,
        counts_by_order: dict[int, tuple[np.ndarray, np.ndarray]],
        discounts: dict[int, np.ndarray],
    ) -> None:
        unigram_grams, unigram_counts = counts_by_order[1]
        unigram_discounts = discounts[1]
        discounted = unigram_discounts[np.minimum(unigram_counts, 3)]
        total = float(unigram_counts.sum())
        probs = np.full(self.vocab_size, discounted.sum() / total / self.vocab_size, dtype=np.float64)
        probs[unigram_grams[:, 0]] += (unigram_counts - discounted) / total
        self._unigram_grams, self._unigram_counts = unigram_grams, unigram_counts
        self._unigram_discounts, self._unigram_probs = unigram_discounts, probs
        self._levels = {
            k: _Level.build(grams, counts, discounts[k])
            for k, (grams, counts) in counts_by_order.items()
            if k >= 2
        }

    # ------------------------------------------------------------------ inference

    def token_log_probs(self, sequence: Sequence[int]) -> np.ndarray:
        """Natural-log probability of each token of ``sequence`` given the tokens before it.

        The first token is conditioned on the start context (``order - 1`` start symbols).
        """
        self._check_fitted()
        ids = self._as_token_ids(sequence)
        if ids.size == 0:
            return np.zeros(0, dtype=np.float64)
        padded = np.concatenate([np.full(self.order - 1, self.start_id, dtype=np.int64), ids])
        return np.log(self._probabilities(sliding_window_view(padded, self.order)))

    def score(self, sequence: Sequence[int]) -> float:
        """Total negative log-likelihood of ``sequence`` in nats, its first token conditioned on the start context.

        ``exp(score(s) / len(s))`` is the model's perplexity on ``s`` (book §2.6).
        """
        return float(-self.token_log_probs(sequence).sum())

    def log_prob(self, context: Sequence[int], token: int) -> float:
        """``log P(token | context)`` in nats; only the last ``order - 1`` tokens of ``context`` matter."""
        self._check_fitted()
        row = np.concatenate([self._context_row(context), self._as_token_ids([token])])
        return float(np.log(self._probabilities(row[None, :])[0]))

    def next_token_distribution(self, context: Sequence[int]) -> np.ndarray:
        """``P(· | context)`` over the whole vocabulary: an array of ``vocab_size`` positive floats summing to 1."""
        self._check_fitted()
        context = self._context_row(context)
        probs = self._unigram_probs.copy()
        for k in range(2, self.order + 1):
            level = self._levels[k]
            index, found = level.find_contexts(context[self.order - k :][None, :])
            if not found[0]:
                continue
            index = index[0]
            rows = slice(level.starts[index], level.ends[index])
            counts = level.counts[rows]
            probs *= level.backoff_mass[index]
            probs[level.grams[rows, -1]] += counts - level.discounts[np.minimum(counts, 3)]
            probs /= level.totals[index]
        return probs

    def _probabilities(self, rows: np.ndarray) -> np.ndarray:
        """``P(row[-1] | row[:-1])`` for each row of ``order`` ids, all rows at once."""
        probs = self._unigram_probs[rows[:, -1]]
        for k in range(2, self.order + 1):
            level = self._levels[k]
            context_index, seen = level.find_contexts(rows[:, self.order - k : -1])
            counts = level.find_counts(rows[:, self.order - k :])
            discounted = counts - level.discounts[np.minimum(counts, 3)]
            interpolated = (discounted + level.backoff_mass[context_index] * probs) / level.totals[context_index]
            probs = np.where(seen, interpolated, probs)
        return probs

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike) -> None:
        """Write the model to ``path`` as a numpy ``.npz`` archive (counts and discounts; no pickle)."""
        self._check_fitted()
        config = {
            "format": _FORMAT_NAME,
            "format_version": _FORMAT_VERSION,
            "order": self.order,
            "vocab_size": self.vocab_size,
            "discount": self.discount,
            "num_training_tokens": self.num_training_tokens,
        }
        arrays = {
            "config": np.array(json.dumps(config)),
            "grams_1": self._unigram_grams,
            "counts_1": self._unigram_counts,
            "discounts_1": self._unigram_discounts,
        }
        for k, level in self._levels.items():
            arrays.update({f"grams_{k}": level.grams, f"counts_{k}": level.counts, f"discounts_{k}": level.discounts})
        with open(path, "wb") as f:
            np.savez_compressed(f, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> NGramLanguageModel:
        """Read a model written by :meth:`save`."""
        name = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no n-gram model file at {name!r}; write one with NGramLanguageModel.save")
        not_a_model = f"{name!r} is not an n-gram model saved by NGramLanguageModel.save"
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = dict(archive.items())
            config = json.loads(str(arrays["config"]))
        except (ValueError, KeyError, OSError) as err:
            raise ValueError(f"{not_a_model} ({err})") from None
        if config.get("format") != _FORMAT_NAME or config.get("format_version") != _FORMAT_VERSION:
            raise ValueError(f"{not_a_model} (format version {_FORMAT_VERSION})")
        model = cls(order=config["order"], vocab_size=config["vocab_size"], discount=config["discount"])
        model.num_training_tokens = int(config["num_training_tokens"])
        orders = range(1, model.order + 1)
        model._build(
            {k: (arrays[f"grams_{k}"].astype(np.int64), arrays[f"counts_{k}"].astype(np.int64)) for k in orders},
            {k: arrays[f"discounts_{k}"].astype(np.float64) for k in orders},
        )
        return model

    # ------------------------------------------------------------------ helpers

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise ValueError(
                "this NGramLanguageModel has no counts yet: call .fit(sequences) or NGramLanguageModel.load(path)"
            )

    def _as_token_ids(self, sequence: Sequence[int]) -> np.ndarray:
        ids = np.asarray(sequence)
        if ids.ndim != 1:
            raise ValueError(f"expected a 1-D sequence of token ids, got an array of shape {ids.shape}")
        if ids.size == 0:
            return ids.astype(np.int64)
        if not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"token ids must be integers, got dtype {ids.dtype}")
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= self.vocab_size:
            bad = low if low < 0 else high
            raise ValueError(
                f"token id {bad} is outside [0, vocab_size={self.vocab_size}); set vocab_size=len(tokenizer)"
            )
        return ids.astype(np.int64)

    def _context_row(self, context: Sequence[int]) -> np.ndarray:
        """The last ``order - 1`` ids of ``context``, left-padded with the start symbol."""
        ids = self._as_token_ids(context)
        ids = ids[max(len(ids) - (self.order - 1), 0) :] if self.order > 1 else ids[:0]
        pad = np.full(self.order - 1 - len(ids), self.start_id, dtype=np.int64)
        return np.concatenate([pad, ids])

