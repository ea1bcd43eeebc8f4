"""Tests of the Kneser-Ney n-gram baseline (book §2.5).

The reference probabilities below are worked out by hand from the definitions in the docstring of
`NGramLanguageModel`, with exact fractions; the comments show every count and every step.
"""

import math
from fractions import Fraction

import numpy as np
import pytest

from hf_hundredpage.evaluation.ngram import NGramLanguageModel, modified_kneser_ney_discounts


def _probs(model, context):
    return model.next_token_distribution(context)


def _zipf_corpus(seed, num_tokens, vocab_size, num_documents):
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, vocab_size + 1)
    tokens = rng.choice(vocab_size, size=num_tokens, p=weights / weights.sum())
    return [doc.tolist() for doc in np.array_split(tokens, num_documents)]


# -------------------------------------------------------------------------------------------- by hand

# Corpus of the trigram example: two sentences over the vocabulary {0, 1, 2, 3}; token 3 never occurs.
# With S the start symbol, the padded sentences are  S S 0 1 2  and  S S 0 1 1.
HAND_CORPUS = [[0, 1, 2], [0, 1, 1]]


def test_trigram_kneser_ney_by_hand():
    lm = NGramLanguageModel(order=3, vocab_size=4, discount=0.5).fit(HAND_CORPUS)
    D = Fraction(1, 2)

    # Order 3, raw counts:  (S,S,0)=2  (S,0,1)=2  (0,1,2)=1  (0,1,1)=1.
    # Order 2, adjusted counts, from the suffixes of the trigram types:
    #   (S,0) begins with S: keeps its raw count 2;  (0,1): left contexts {S} -> 1;
    #   (1,2): left contexts {0} -> 1;               (1,1): left contexts {0} -> 1.
    # Order 1, continuation counts from the bigram types (S,0) (0,1) (1,2) (1,1):
    #   c(0) = 1 (after S), c(1) = 2 (after 0 and after 1), c(2) = 1 (after 1), c(3) = 0.  Total 4.
    # Unigram: P1(w) = (max(c(w) - D, 0) + γ/4) / 4 with γ = 3 types * D = 3/2.
    p1 = {
        0: (1 - D) / 4 + Fraction(3, 2) / 4 / 4,  # 1/8 + 3/32 = 7/32
        1: (2 - D) / 4 + Fraction(3, 2) / 4 / 4,  # 3/8 + 3/32 = 15/32
        2: (1 - D) / 4 + Fraction(3, 2) / 4 / 4,  # 7/32
        3: Fraction(3, 2) / 4 / 4,  # 3/32
    }
    assert [p1[w] for w in range(4)] == [Fraction(7, 32), Fraction(15, 32), Fraction(7, 32), Fraction(3, 32)]
    # Bigram contexts:  (1) -> {2: 1, 1: 1}, total 2, γ = 2D = 1;   (0) -> {1: 1}, total 1, γ = D;
    #                   (S) -> {0: 2}, total 2, γ = D.
    p2_after_1 = {w: (max({2: 1, 1: 1}.get(w, 0) - D, 0) + 1 * p1[w]) / 2 for w in range(4)}
    assert p2_after_1 == {0: Fraction(7, 64), 1: Fraction(31, 64), 2: Fraction(23, 64), 3: Fraction(3, 64)}
    p2_after_0 = {w: (max({1: 1}.get(w, 0) - D, 0) + D * p1[w]) / 1 for w in range(4)}
    assert p2_after_0[1] == Fraction(47, 64)  # 1/2 + 15/64
    p2_after_start = {w: (max({0: 2}.get(w, 0) - D, 0) + D * p1[w]) / 2 for w in range(4)}
    assert p2_after_start[0] == Fraction(103, 128)  # 3/4 + 7/128
    # Trigram contexts: (S,S) -> {0: 2}, total 2, γ = D;  (S,0) -> {1: 2}, total 2, γ = D;
    #                   (0,1) -> {2: 1, 1: 1}, total 2, γ = 2D = 1.
    p3_after_ss = {w: (max({0: 2}.get(w, 0) - D, 0) + D * p2_after_start[w]) / 2 for w in range(4)}
    p3_after_s0 = {w: (max({1: 2}.get(w, 0) - D, 0) + D * p2_after_0[w]) / 2 for w in range(4)}
    p3_after_01 = {w: (max({2: 1, 1: 1}.get(w, 0) - D, 0) + 1 * p2_after_1[w]) / 2 for w in range(4)}
    assert p3_after_ss[0] == Fraction(487, 512)  # 3/4 + 103/512
    assert p3_after_s0[1] == Fraction(239, 256)  # 3/4 + 47/256
    assert p3_after_01 == {0: Fraction(7, 128), 1: Fraction(63, 128), 2: Fraction(55, 128), 3: Fraction(3, 128)}

    for context, expected in [([], p3_after_ss), ([0], p3_after_s0), ([0, 1], p3_after_01), ([2, 0, 1], p3_after_01)]:
        np.testing.assert_allclose(_probs(lm, context), [float(expected[w]) for w in range(4)], rtol=1e-12)
    # Unseen contexts back off: (2,2) is unseen at orders 3 and 2 -> P1;  (2,1) is unseen at order 3 -> P2(.|1).
    np.testing.assert_allclose(_probs(lm, [2, 2]), [float(p1[w]) for w in range(4)], rtol=1e-12)
    np.testing.assert_allclose(_probs(lm, [2, 1]), [float(p2_after_1[w]) for w in range(4)], rtol=1e-12)
    assert lm.log_prob([0, 1], 3) == pytest.approx(math.log(3 / 128), rel=1e-12)

    # score: the first token is conditioned on the start context S S.
    expected_nll = -math.log(487 / 512) - math.log(239 / 256) - math.log(55 / 128)
    assert lm.score([0, 1, 2]) == pytest.approx(expected_nll, rel=1e-12)
    np.testing.assert_allclose(np.exp(lm.token_log_probs([0, 1, 2])), [487 / 512, 239 / 256, 55 / 128], rtol=1e-12)


def test_bigram_modified_kneser_ney_by_hand():
    # One sentence 0 0 0 0 1, padded S 0 0 0 0 1; discounts D1 = 1/2, D2 = 1, D3+ = 3/2.
    lm = NGramLanguageModel(order=2, vocab_size=3, discount=(0.5, 1.0, 1.5)).fit([[0, 0, 0, 0, 1]])
    # Order 2, raw counts: (S,0)=1 (0,0)=3 (0,1)=1.  Order 1, continuation counts: c(0)=2 (after S, 0),
    # c(1)=1 (after 0), c(2)=0; total 3; γ = D2 + D1 = 3/2.
    p1 = [(2 - 1.0 + 1.5 / 3) / 3, (1 - 0.5 + 1.5 / 3) / 3, (1.5 / 3) / 3]  # 1/2, 1/3, 1/6
    np.testing.assert_allclose(p1, [1 / 2, 1 / 3, 1 / 6])
    # Context (0): {0: 3 (class 3+), 1: 1 (class 1)}, total 4, γ = D3+ + D1 = 2.
    p_after_0 = [(3 - 1.5 + 2 * p1[0]) / 4, (1 - 0.5 + 2 * p1[1]) / 4, (2 * p1[2]) / 4]  # 5/8, 7/24, 1/12
    np.testing.assert_allclose(p_after_0, [5 / 8, 7 / 24, 1 / 12])
    # Context (S): {0: 1}, total 1, γ = D1.
    p_after_start = [1 - 0.5 + 0.5 * p1[0], 0.5 * p1[1], 0.5 * p1[2]]  # 3/4, 1/6, 1/12
    np.testing.assert_allclose(_probs(lm, []), p_after_start, rtol=1e-12)
    np.testing.assert_allclose(_probs(lm, [0]), p_after_0, rtol=1e-12)
    np.testing.assert_allclose(_probs(lm, [1]), p1, rtol=1e-12)  # context (1) never seen
    assert lm.discounts == {1: (0.5, 1.0, 1.5), 2: (0.5, 1.0, 1.5)}


def test_order_one_is_absolute_discounting_unigram():
    # Raw counts 0:2  1:3  2:1 (6 tokens), token 3 unseen; D = 1/2 takes 3 * 1/2 = 3/2 from the seen
    # tokens and spreads it uniformly over the 4 tokens: P(w) = (c(w) - 1/2) / 6 + (3/2) / 6 / 4.
    lm = NGramLanguageModel(order=1, vocab_size=4, discount=0.5).fit(HAND_CORPUS)
    expected = [1.5 / 6 + 0.0625, 2.5 / 6 + 0.0625, 0.5 / 6 + 0.0625, 0.0625]
    for context in ([], [0], [1, 2, 3]):  # an order-1 model ignores the context
        np.testing.assert_allclose(_probs(lm, context), expected, rtol=1e-12)
    assert lm.score([3, 1]) == pytest.approx(-math.log(0.0625) - math.log(2.5 / 6 + 0.0625), rel=1e-12)


def test_modified_kneser_ney_discount_estimates():
    # n1=10 n2=5 n3=3 n4=2 -> Y = 10/20 = 1/2; D1 = 1 - 2Y*5/10 = 1/2; D2 = 2 - 3Y*3/5 = 11/10;
    # D3+ = 3 - 4Y*2/3 = 5/3.
    counts = np.array([1] * 10 + [2] * 5 + [3] * 3 + [4] * 2 + [7, 9])
    np.testing.assert_allclose(modified_kneser_ney_discounts(counts), [0.5, 1.1, 5 / 3])
    assert modified_kneser_ney_discounts(np.array([1, 1, 2, 3])) is None  # no n-gram seen 4 times
    # A toy corpus is too sparse for the estimate: every order falls back to the single discount 0.75.
    lm = NGramLanguageModel(order=3, vocab_size=4).fit(HAND_CORPUS)
    assert lm.discounts == {k: (0.75, 0.75, 0.75) for k in (1, 2, 3)}


# ------------------------------------------------------------------------------------ properties


@pytest.fixture(scope="module")
def random_trigram():
    corpus = _zipf_corpus(seed=0, num_tokens=20_000, vocab_size=300, num_documents=40)
    return NGramLanguageModel(order=3, vocab_size=300).fit(corpus), corpus


def test_estimated_discounts_are_used(random_trigram):
    lm, corpus = random_trigram
    for k in (2, 3):
        assert lm.discounts[k] != (0.75, 0.75, 0.75), f"order {k} fell back to the default discount"
        assert all(0 < d <= c for c, d in enumerate(lm.discounts[k], start=1))
    # Every one of the 300 tokens follows at least 4 different tokens: no n_1 .. n_3 at order 1, no estimate.
    assert lm.discounts[1] == (0.75, 0.75, 0.75)


def test_distributions_sum_to_one_and_are_positive(random_trigram):
    lm, corpus = random_trigram
    contexts = [
        [],  # start of a sequence
        corpus[0][:1],  # one token after the start
        corpus[0][5:7],  # a seen trigram context
        [corpus[0][5], 299],  # unseen trigram context, maybe seen bigram context
        [299, 299],  # most likely unseen at every order
        list(corpus[1][:50]),  # longer than needed: only the last two ids count
    ]
    for context in contexts:
        probs = lm.next_token_distribution(context)
        assert probs.shape == (300,)
        assert probs.min() > 0
        assert probs.sum() == pytest.approx(1.0, abs=1e-12)
    long_context = corpus[1][:50]
    np.testing.assert_array_equal(
        lm.next_token_distribution(long_context), lm.next_token_distribution(long_context[-2:])
    )


def test_every_code_path_gives_the_same_probabilities(random_trigram):
    lm, corpus = random_trigram
    sequence = corpus[3][:30] + [299, 298, 0]
    per_token = [lm.log_prob(sequence[:i], token) for i, token in enumerate(sequence)]
    from_distributions = [np.log(lm.next_token_distribution(sequence[:i])[token]) for i, token in enumerate(sequence)]
    np.testing.assert_allclose(lm.token_log_probs(sequence), per_token, rtol=1e-12)
    np.testing.assert_allclose(per_token, from_distributions, rtol=1e-10)
    assert lm.score(sequence) == pytest.approx(-sum(per_token), rel=1e-12)


def test_tokens_never_seen_get_a_finite_probability():
    lm = NGramLanguageModel(order=3, vocab_size=10).fit([[1, 2, 3, 1, 2, 3]])
    for context in ([1, 2], [9, 9], []):
        assert np.isfinite(lm.log_prob(context, 9)) and lm.log_prob(context, 9) < lm.log_prob([1, 2], 3)
    assert np.isfinite(lm.score([9, 8, 7]))
    assert lm.score([]) == 0.0 and lm.token_log_probs([]).shape == (0,)


def test_perplexity_decreases_from_order_one_to_three():
    rng = np.random.default_rng(1)
    phrases = [[1, 2, 3, 4], [1, 2, 5, 6], [7, 2, 3, 8], [9, 5, 6, 4]]  # next token depends on 2 before it
    def corpus(num_documents):
        return [sum((phrases[i] for i in rng.integers(0, 4, size=10)), []) for _ in range(num_documents)]
    train, test = corpus(50), corpus(10)
    num_tokens = sum(map(len, test))
    perplexities = [
        math.exp(sum(NGramLanguageModel(order=n, vocab_size=10).fit(train).score(s) for s in test) / num_tokens)
        for n in (1, 2, 3)
    ]
    assert perplexities[0] > perplexities[1] > perplexities[2]
    assert perplexities[0] > 1.3 * perplexities[2]


def test_save_and_load_round_trip(tmp_path, random_trigram):
    lm, corpus = random_trigram
    path = tmp_path / "trigram.npz"
    lm.save(path)
    loaded = NGramLanguageModel.load(path)
    assert (loaded.order, loaded.vocab_size, loaded.discount) == (3, 300, None)
    assert loaded.discounts == lm.discounts
    assert loaded.num_training_tokens == lm.num_training_tokens == 20_000
    np.testing.assert_array_equal(loaded.token_log_probs(corpus[5]), lm.token_log_probs(corpus[5]))

    tuple_model = NGramLanguageModel(order=2, vocab_size=3, discount=(0.5, 1.0, 1.5)).fit([[0, 0, 1]])
    tuple_model.save(tmp_path / "tuple.npz")
    assert NGramLanguageModel.load(tmp_path / "tuple.npz").discount == (0.5, 1.0, 1.5)

    with pytest.raises(FileNotFoundError, match="no n-gram model file"):
        NGramLanguageModel.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", x=np.arange(3))
    with pytest.raises(ValueError, match="not an n-gram model"):
        NGramLanguageModel.load(tmp_path / "other.npz")


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="order must be a positive integer"):
        NGramLanguageModel(order=0, vocab_size=5)
    with pytest.raises(ValueError, match="discount must be in"):
        NGramLanguageModel(order=2, vocab_size=5, discount=1.5)
    with pytest.raises(ValueError, match="D1, D2, D3"):
        NGramLanguageModel(order=2, vocab_size=5, discount=(0.5, 2.5, 1.0))
    lm = NGramLanguageModel(order=2, vocab_size=5)
    with pytest.raises(ValueError, match="call .fit"):
        lm.score([1, 2])
    with pytest.raises(ValueError, match="wrap a single sequence"):
        lm.fit([1, 2, 3])
    with pytest.raises(ValueError, match="got no tokens"):
        lm.fit([[], []])
    with pytest.raises(ValueError, match=r"token id 5 is outside \[0, vocab_size=5\)"):
        lm.fit([[1, 2, 5]])
    lm.fit([[1, 2, 3]])
    with pytest.raises(ValueError, match="token id -1"):
        lm.log_prob([1], -1)
    with pytest.raises(ValueError, match="must be integers"):
        lm.score([1.5, 2.0])
