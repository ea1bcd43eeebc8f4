"""The count-based + neural mixture (book §2.5 × §4): `hf_hundredpage.evaluation.mixture` and the generation
`NGramMixtureLogitsProcessor`, against hand-computed values and the two models alone."""

import math

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from hf_hundredpage import HundredPageTransformerConfig, HundredPageTransformerForCausalLM
from hf_hundredpage.data import default_tokenizer_path, load_text_dataset
from hf_hundredpage.evaluation.lm import (
    causal_lm_token_log_probs,
    evaluate_against_ngram,
    evaluate_causal_lm,
    fit_ngram_baseline,
    ngram_token_log_probs,
)
from hf_hundredpage.evaluation.mixture import cross_fitted_mixture, fit_mixture_weight, mixture_log_probs
from hf_hundredpage.generation import NGramMixtureLogitsProcessor


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup():
    tokenizer = AutoTokenizer.from_pretrained(default_tokenizer_path())
    data = load_text_dataset()
    train, validation = list(data["train"]["text"][:300]), list(data["validation"]["text"][:12])
    torch.manual_seed(0)
    model = HundredPageTransformerForCausalLM(HundredPageTransformerConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_attention_heads=2, num_hidden_layers=1, max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id))
    return tokenizer, model, fit_ngram_baseline(tokenizer, train, order=3), train, validation


def test_mixture_of_hand_made_probabilities():
    nn, kn = np.log([0.5, 0.1]), np.log([0.25, 0.3])
    np.testing.assert_allclose(mixture_log_probs(nn, kn, 0.4), np.log([0.4 * 0.25 + 0.6 * 0.5, 0.4 * 0.3 + 0.6 * 0.1]))
    assert np.array_equal(mixture_log_probs(nn, kn, 0.0), nn)
    assert np.array_equal(mixture_log_probs(nn, kn, 1.0), kn)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        mixture_log_probs(nn, kn, 1.5)
    # the likelihood of two tokens each best explained by one model peaks strictly inside (0, 1)
    assert 0 < fit_mixture_weight(nn, kn) < 1
    assert fit_mixture_weight(np.log([0.9, 0.9]), np.log([0.1, 0.1])) == 0.0


def test_token_log_probs_agree_with_the_summaries(setup):
    tokenizer, model, ngram, _, validation = setup
    nn = causal_lm_token_log_probs(model, tokenizer, validation, max_length=64)
    kn = ngram_token_log_probs(ngram, tokenizer, validation)
    assert [len(a) for a in nn] == [len(b) for b in kn]  # the same tokens are scored
    summary = evaluate_causal_lm(model, tokenizer, validation, max_length=64)
    assert -sum(a.sum() for a in nn) / summary["n_tokens"] == pytest.approx(summary["loss"], rel=1e-9)


def test_cross_fitted_mixture_beats_neither_less_and_endpoints_are_exact(setup):
    tokenizer, model, ngram, _, validation = setup
    nn = causal_lm_token_log_probs(model, tokenizer, validation, max_length=64)
    kn = ngram_token_log_probs(ngram, tokenizer, validation)
    mixed, weights = cross_fitted_mixture(nn, kn)
    assert all(0 <= w <= 1 for w in weights)
    total = lambda docs: sum(float(d.sum()) for d in docs)  # noqa: E731
    # λ is fitted on the other half, so the mix may lose a little to the better model (here the n-gram: the network
    # is untrained), never much
    assert total(mixed) >= max(total(nn), total(kn)) * (1 + 1e-3)
    for weight, reference in ((0.0, nn), (1.0, kn)):
        for doc_nn, doc_kn, doc_ref in zip(nn, kn, reference):
            assert np.array_equal(mixture_log_probs(doc_nn, doc_kn, weight), doc_ref)


def test_evaluate_against_ngram_reports_the_mixture_beside_both(setup, tmp_path):
    tokenizer, model, _, train, validation = setup
    from datasets import Dataset, DatasetDict

    raw = DatasetDict({"train": Dataset.from_dict({"text": train}), "validation": Dataset.from_dict({"text": validation})})
    metrics = evaluate_against_ngram(model, tokenizer, raw, max_length=64, save_ngram_to=tmp_path / "ngram.npz")
    for prefix in ("eval_", "ngram_eval_", "mixture_eval_"):
        assert {f"{prefix}loss", f"{prefix}bits_per_byte", f"{prefix}perplexity"} <= set(metrics)
    assert metrics["mixture_eval_tokens"] == metrics["eval_tokens"] == metrics["ngram_eval_tokens"]
    assert metrics["mixture_eval_bits_per_byte"] <= min(metrics["eval_bits_per_byte"], metrics["ngram_eval_bits_per_byte"]) + 1e-3
    assert (tmp_path / "ngram.npz").is_file()
    assert "mixture_eval_loss" not in evaluate_against_ngram(model, tokenizer, raw, max_length=64, mixture=False)


def test_logits_processor_is_a_distribution_and_matches_both_ends(setup):
    tokenizer, model, ngram, _, _ = setup
    ids = tokenizer("The city of", return_tensors="pt").input_ids
    ids = torch.cat([torch.tensor([[tokenizer.bos_token_id]]), ids], dim=1)
    logits = torch.randn(1, len(tokenizer))
    skip = [tokenizer.bos_token_id, tokenizer.pad_token_id]
    mixed = NGramMixtureLogitsProcessor(ngram, 0.3, skip)(ids, logits.clone())
    assert math.isclose(float(mixed.exp().sum()), 1.0, rel_tol=1e-5)
    torch.testing.assert_close(NGramMixtureLogitsProcessor(ngram, 0.0, skip)(ids, logits.clone()), logits.log_softmax(-1))
    expected = torch.from_numpy(ngram.next_token_distribution(ids[0, 1:].tolist()[-2:])).float()
    torch.testing.assert_close(NGramMixtureLogitsProcessor(ngram, 1.0, skip)(ids, logits.clone())[0].exp(), expected)
    manual = (0.3 * expected + 0.7 * logits.softmax(-1)[0]).log()
    torch.testing.assert_close(mixed[0], manual, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        NGramMixtureLogitsProcessor(ngram, -0.1)
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=5, do_sample=False,
                         logits_processor=[NGramMixtureLogitsProcessor(ngram, 1.0, skip)], pad_token_id=0)
    context = ids[0, 1:].tolist()
    for token in out[0, ids.shape[1]:].tolist():  # λ = 1 decodes the n-gram's own greedy choices
        assert token == int(np.argmax(ngram.next_token_distribution(context[-2:])))
        context.append(token)
