"""The ch. 3 Elman RNN: parity with the book's equations, the recurrence's gradients, cache, padding, heads."""

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification, DynamicCache

import hf_hundredpage  # noqa: F401  (registers the Auto classes)
from hf_hundredpage import (
    HundredPageRNNConfig,
    HundredPageRNNForCausalLM,
    HundredPageRNNForSequenceClassification,
    HundredPageRNNModel,
)
from hf_hundredpage.conversion import rnn_from_book
from hf_hundredpage.models.rnn.modeling_rnn import ElmanRecurrence
from tests.book_reference import RecurrentLanguageModel

from .helpers import assert_cached_greedy_equals_uncached, assert_left_padding_invariant, tiny_inputs


def tiny_config(**kwargs):
    return HundredPageRNNConfig(**{**dict(vocab_size=89, hidden_size=24, num_hidden_layers=2, pad_token_id=0), **kwargs})


def test_defaults_are_the_books_architecture():
    config = HundredPageRNNConfig()
    assert (config.hidden_size, config.num_hidden_layers, config.tie_word_embeddings) == (128, 2, False)
    assert config.layer_types == ["linear_attention"] * 2
    names = {name for name, _ in HundredPageRNNForCausalLM(tiny_config()).named_parameters()}
    assert names == {
        "model.embed_tokens.weight",
        "model.layers.0.input_proj.weight", "model.layers.0.input_proj.bias", "model.layers.0.hidden_proj.weight",
        "model.layers.1.input_proj.weight", "model.layers.1.input_proj.bias", "model.layers.1.hidden_proj.weight",
        "lm_head.weight", "lm_head.bias",
    }
    assert HundredPageRNNConfig(emb_dim=64, num_layers=3).num_hidden_layers == 3


def test_matches_book_reference_logits():
    torch.manual_seed(0)
    book = RecurrentLanguageModel(vocab_size=89, emb_dim=24, num_layers=3, pad_idx=0)
    checkpoint = dict(state_dict=book.state_dict(), vocab_size=89, emb_dim=24, num_layers=3, pad_index=0)
    ours = rnn_from_book(checkpoint)
    ids = torch.randint(1, 89, (4, 23))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, book(ids), rtol=0, atol=1e-5)


def test_training_gradients_match_book_reference():
    """The hand-written BPTT gives the same parameter gradients as autograd through the book's loop."""
    torch.manual_seed(0)
    book = RecurrentLanguageModel(vocab_size=89, emb_dim=24, num_layers=2, pad_idx=0)
    ours = rnn_from_book(dict(state_dict=book.state_dict(), vocab_size=89, emb_dim=24, num_layers=2, pad_index=0))
    book, ours = book.double(), ours.double().train()  # same (float32-exact) weights, compared in float64
    ids = torch.randint(1, 89, (3, 15))
    loss_fn = torch.nn.functional.cross_entropy
    for model in (book, ours):  # the same loss written out (transformers' loss upcasts to float32)
        logits = model(ids) if model is book else model(ids).logits
        loss_fn(logits[:, :-1].reshape(-1, 89), ids[:, 1:].reshape(-1)).backward()
    for l in range(2):
        unit, layer = book.rnn.rnn_units[l], ours.model.layers[l]
        torch.testing.assert_close(layer.input_proj.weight.grad, unit.Wh.grad.t(), rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(layer.input_proj.bias.grad, unit.b.grad, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(layer.hidden_proj.weight.grad, unit.Uh.grad.t(), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(ours.model.embed_tokens.weight.grad, book.embedding.weight.grad, rtol=1e-9, atol=1e-12)


def test_recurrence_gradcheck():
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(2, 6, 5, dtype=torch.double, generator=generator, requires_grad=True)
    h0 = torch.randn(2, 5, dtype=torch.double, generator=generator, requires_grad=True)
    weight = (0.5 * torch.randn(5, 5, dtype=torch.double, generator=generator)).requires_grad_()
    assert torch.autograd.gradcheck(ElmanRecurrence.apply, (inputs, h0, weight))


def test_cached_greedy_decoding_equals_uncached():
    torch.manual_seed(0)
    assert_cached_greedy_equals_uncached(HundredPageRNNForCausalLM(tiny_config()).eval(), vocab=89)


def test_left_padding_does_not_change_real_tokens():
    torch.manual_seed(0)
    assert_left_padding_invariant(HundredPageRNNForCausalLM(tiny_config()).eval(), vocab=89)


def test_cache_holds_one_state_per_layer_whatever_the_context():
    model = HundredPageRNNForCausalLM(tiny_config()).eval()
    for length in (3, 50):
        ids, _ = tiny_inputs(vocab=89, batch=2, length=length)
        cache = model(ids, use_cache=True).cache
        assert isinstance(cache, DynamicCache)
        states = [layer.recurrent_states[0] for layer in cache.layers]
        assert [tuple(s.shape) for s in states] == [(2, 24), (2, 24)]


@pytest.mark.parametrize("mode", [dict(do_sample=True, top_p=0.9, temperature=0.7), dict(num_beams=3, do_sample=False)])
def test_generate_sampling_and_beam_search(mode):
    torch.manual_seed(0)
    model = HundredPageRNNForCausalLM(tiny_config()).eval()
    ids, mask = tiny_inputs(vocab=89, batch=2, length=6, left_pad=(0, 2))
    out = model.generate(ids, attention_mask=mask, max_new_tokens=7, pad_token_id=0, **mode)
    assert out.shape == (2, 13) and torch.equal(out[:, :6], ids)


def test_beam_search_scores_equal_an_uncached_rescoring():
    """Beam search reorders the recurrent cache; the returned sequence's score must equal a fresh forward's."""
    torch.manual_seed(0)
    model = HundredPageRNNForCausalLM(tiny_config()).eval()
    ids, _ = tiny_inputs(vocab=89, batch=1, length=5)
    out = model.generate(
        ids, max_new_tokens=6, num_beams=4, do_sample=False, length_penalty=0.0, output_scores=True,
        return_dict_in_generate=True, pad_token_id=0,
    )
    with torch.no_grad():
        logprobs = model(out.sequences).logits.log_softmax(-1)[0, 4:-1]
    rescored = logprobs.gather(-1, out.sequences[0, 5:, None]).sum()
    torch.testing.assert_close(out.sequences_scores[0], rescored, rtol=1e-4, atol=1e-4)


def test_dropout_only_between_layers_and_only_in_training():
    model = HundredPageRNNForCausalLM(tiny_config(dropout=0.5))
    ids, _ = tiny_inputs(vocab=89, batch=2, length=5)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, model(ids).logits)
    model.train()
    torch.manual_seed(1)
    first = model(ids).logits
    torch.manual_seed(2)
    assert not torch.equal(first, model(ids).logits)


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = HundredPageRNNForCausalLM(tiny_config()).train()
    ids, _ = tiny_inputs(vocab=89, batch=2, length=9)

    def grads():
        model.zero_grad()
        model(ids, labels=ids).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain = grads()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    checkpointed = grads()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-6, atol=1e-7)


def test_tied_embeddings_keep_the_output_bias():
    model = HundredPageRNNForCausalLM(tiny_config(tie_word_embeddings=True))
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert model.lm_head.bias is not None


def test_auto_classes_and_save_load_round_trip(tmp_path):
    config = AutoConfig.for_model("hundredpage_rnn", vocab_size=89, hidden_size=24, pad_token_id=0)
    assert isinstance(config, HundredPageRNNConfig)
    assert isinstance(AutoModel.from_config(config), HundredPageRNNModel)
    model = AutoModelForCausalLM.from_config(config).eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids, _ = tiny_inputs(vocab=89, batch=2, length=5)
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, rtol=0, atol=0)
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=2)
    assert isinstance(classifier, HundredPageRNNForSequenceClassification)


def test_sequence_classification_pools_last_real_token_under_padding():
    torch.manual_seed(0)
    model = HundredPageRNNForSequenceClassification(tiny_config(num_labels=3)).eval()
    ids, _ = tiny_inputs(vocab=89, batch=1, length=6)
    right = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], 1)
    right_mask = torch.cat([torch.ones(1, 6, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long)], 1)
    left, left_mask = right.roll(3, 1), right_mask.flip(1)
    with torch.no_grad():
        alone = model(ids).logits
        torch.testing.assert_close(model(right, attention_mask=right_mask).logits, alone, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model(left, attention_mask=left_mask).logits, alone, rtol=1e-5, atol=1e-5)
