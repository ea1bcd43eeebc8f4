"""The ch. 4 decoder transformer: parity with the book's equations and with Llama, caching, padding, heads."""

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    LlamaConfig,
    LlamaForCausalLM,
)

import hf_hundredpage  # noqa: F401  (registers the Auto classes)
from hf_hundredpage import (
    HundredPageTransformerConfig,
    HundredPageTransformerForCausalLM,
    HundredPageTransformerForSequenceClassification,
    HundredPageTransformerModel,
)
from hf_hundredpage.conversion import transformer_from_book
from tests.book_reference import DecoderLanguageModel

from .helpers import assert_cached_greedy_equals_uncached, assert_left_padding_invariant, tiny_inputs


def tiny_config(**kwargs):
    defaults = dict(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, pad_token_id=0)
    return HundredPageTransformerConfig(**{**defaults, **kwargs})


def test_defaults_are_the_books_architecture():
    config = HundredPageTransformerConfig()
    assert (config.hidden_act, config.gated_mlp, config.mlp_bias, config.attention_bias) == ("relu", False, True, False)
    assert (config.final_norm, config.rope_interleaved, config.tie_word_embeddings) == (False, True, False)
    assert config.rms_norm_eps == 1e-8 and config.rope_theta == 10000.0
    assert config.intermediate_size == 4 * config.hidden_size
    model = HundredPageTransformerForCausalLM(tiny_config())
    names = {name for name, _ in model.named_parameters()}
    assert "model.norm.weight" not in names and "lm_head.bias" not in names
    assert "model.layers.0.mlp.up_proj.bias" in names and "model.layers.0.self_attn.q_proj.bias" not in names
    assert torch.all(model.model.embed_tokens.weight[0] == 0)  # padding row


def test_book_names_are_aliases():
    config = HundredPageTransformerConfig(emb_dim=64, num_heads=4, num_blocks=3)
    assert (config.hidden_size, config.num_attention_heads, config.num_hidden_layers) == (64, 4, 3)
    assert config.head_dim == 16 and config.intermediate_size == 256


@pytest.mark.parametrize("bad", [dict(hidden_size=30, num_attention_heads=4), dict(num_key_value_heads=3)])
def test_invalid_config_is_rejected(bad):
    with pytest.raises(Exception, match="num_attention_heads|num_key_value_heads"):
        tiny_config(**bad)


def test_an_explicit_head_dim_need_not_divide_hidden_size():
    """After pruning heads (§6.3) the head count can be any number: the saved config keeps head_dim explicit."""
    config = tiny_config(hidden_size=64, num_attention_heads=3, num_key_value_heads=3, head_dim=16)
    model = HundredPageTransformerForCausalLM(config)
    assert model.model.layers[0].self_attn.q_proj.weight.shape == (48, 64)
    assert model(torch.tensor([[1, 2, 3]])).logits.shape[:2] == (1, 3)


def test_matches_book_reference_logits():
    torch.manual_seed(0)
    book = DecoderLanguageModel(vocab_size=97, emb_dim=32, num_heads=4, num_blocks=2, pad_idx=0)
    checkpoint = {
        "model_state_dict": book.state_dict(),
        "model_config": dict(vocab_size=97, emb_dim=32, num_heads=4, num_blocks=2, pad_idx=0),
    }
    ours = transformer_from_book(checkpoint)
    ids = torch.randint(1, 97, (3, 17))
    with torch.no_grad():
        expected = book(ids)
        for impl in ("eager", "sdpa"):
            ours.set_attn_implementation(impl)
            torch.testing.assert_close(ours(ids).logits, expected, rtol=0, atol=1e-5)


def _llama_shaped(**kwargs):
    return tiny_config(
        gated_mlp=True,
        hidden_act="silu",
        final_norm=True,
        rope_interleaved=False,
        mlp_bias=False,
        rms_norm_eps=1e-6,
        intermediate_size=48,
        **kwargs,
    )


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_llama_shaped_options_compute_llamas_function(kv_heads):
    torch.manual_seed(0)
    ours = HundredPageTransformerForCausalLM(_llama_shaped(num_key_value_heads=kv_heads)).eval()
    llama_config = LlamaConfig(
        vocab_size=97, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=kv_heads, rms_norm_eps=1e-6, pad_token_id=0, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    )
    llama = LlamaForCausalLM(llama_config).eval()
    # Copy Llama's weights in: the parameter names are the same by design.
    missing, unexpected = ours.load_state_dict(llama.state_dict(), strict=False)
    assert not missing and not [k for k in unexpected if "rotary" not in k]
    ids, mask = tiny_inputs(vocab=97, batch=3, length=11, left_pad=(0, 3, 5))
    with torch.no_grad():
        torch.testing.assert_close(
            ours(ids, attention_mask=mask).logits, llama(ids, attention_mask=mask).logits, rtol=1e-5, atol=1e-5
        )
        greedy = dict(max_new_tokens=8, do_sample=False, pad_token_id=0, eos_token_id=2)
        assert torch.equal(ours.generate(ids, attention_mask=mask, **greedy), llama.generate(ids, attention_mask=mask, **greedy))


def test_eager_and_sdpa_agree_with_padding():
    torch.manual_seed(0)
    model = HundredPageTransformerForCausalLM(tiny_config()).eval()
    ids, mask = tiny_inputs(vocab=97, batch=3, length=9, left_pad=(0, 2, 4))
    with torch.no_grad():
        model.set_attn_implementation("eager")
        eager = model(ids, attention_mask=mask).logits
        model.set_attn_implementation("sdpa")
        sdpa = model(ids, attention_mask=mask).logits
    torch.testing.assert_close(eager * mask[..., None], sdpa * mask[..., None], rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # flex attention compiles its kernel on first use (~20 s on a 2-core CPU)
def test_flex_attention_agrees_with_sdpa():
    torch.manual_seed(0)
    model = HundredPageTransformerForCausalLM(tiny_config()).eval()
    ids, _ = tiny_inputs(vocab=97, batch=2, length=16)
    with torch.no_grad():
        sdpa = model(ids).logits
        model.set_attn_implementation("flex_attention")
        torch.testing.assert_close(model(ids).logits, sdpa, rtol=1e-5, atol=1e-5)


def test_cached_greedy_decoding_equals_uncached():
    torch.manual_seed(0)
    assert_cached_greedy_equals_uncached(HundredPageTransformerForCausalLM(tiny_config()).eval(), vocab=97)


def test_left_padding_does_not_change_real_tokens():
    torch.manual_seed(0)
    assert_left_padding_invariant(HundredPageTransformerForCausalLM(tiny_config()).eval(), vocab=97)


@pytest.mark.parametrize("mode", [dict(do_sample=True, top_k=10, temperature=0.8), dict(num_beams=3, do_sample=False)])
def test_generate_sampling_and_beam_search(mode):
    torch.manual_seed(0)
    model = HundredPageTransformerForCausalLM(tiny_config()).eval()
    ids, mask = tiny_inputs(vocab=97, batch=2, length=6, left_pad=(0, 2))
    out = model.generate(ids, attention_mask=mask, max_new_tokens=7, pad_token_id=0, **mode)
    assert out.shape == (2, 13) and torch.equal(out[:, :6], ids)


def test_logits_to_keep():
    model = HundredPageTransformerForCausalLM(tiny_config()).eval()
    ids, _ = tiny_inputs(vocab=97, batch=2, length=7)
    with torch.no_grad():
        full = model(ids).logits
        last = model(ids, logits_to_keep=1).logits
    assert last.shape == (2, 1, 97)
    torch.testing.assert_close(last, full[:, -1:])


def test_loss_is_next_token_cross_entropy():
    model = HundredPageTransformerForCausalLM(tiny_config()).eval()
    ids, _ = tiny_inputs(vocab=97, batch=2, length=7)
    out = model(ids, labels=ids)
    expected = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, 97), ids[:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, expected)


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = HundredPageTransformerForCausalLM(tiny_config(hidden_dropout=0.0)).train()
    ids, _ = tiny_inputs(vocab=97, batch=2, length=9)

    def grads():
        model.zero_grad()
        model(ids, labels=ids).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = grads()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    assert all(layer.gradient_checkpointing for layer in model.model.layers)
    checkpointed = grads()
    assert plain.keys() == checkpointed.keys() and len(plain) > 10
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-6, atol=1e-7)


def test_tied_embeddings():
    model = HundredPageTransformerForCausalLM(tiny_config(tie_word_embeddings=True))
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


def test_auto_classes_and_save_load_round_trip(tmp_path):
    config = AutoConfig.for_model(
        "hundredpage_transformer", vocab_size=97, hidden_size=32, num_attention_heads=4, pad_token_id=0
    )
    assert isinstance(config, HundredPageTransformerConfig)
    assert isinstance(AutoModel.from_config(config), HundredPageTransformerModel)
    model = AutoModelForCausalLM.from_config(config).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, HundredPageTransformerForCausalLM)
    ids, _ = tiny_inputs(vocab=97, batch=2, length=5)
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, rtol=0, atol=0)
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=3)
    assert isinstance(classifier, HundredPageTransformerForSequenceClassification)
    torch.testing.assert_close(classifier.model.layers[0].self_attn.q_proj.weight, model.model.layers[0].self_attn.q_proj.weight)


def test_sequence_classification_pools_last_real_token_under_padding():
    torch.manual_seed(0)
    model = HundredPageTransformerForSequenceClassification(tiny_config(num_labels=3)).eval()
    ids, _ = tiny_inputs(vocab=97, batch=1, length=6)
    right = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], 1)
    right_mask = torch.cat([torch.ones(1, 6, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long)], 1)
    left = torch.cat([torch.zeros(1, 3, dtype=torch.long), ids], 1)
    left_mask = right_mask.flip(1)
    with torch.no_grad():
        alone = model(ids).logits
        torch.testing.assert_close(model(right, attention_mask=right_mask).logits, alone, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model(left, attention_mask=left_mask).logits, alone, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model(right).logits, alone, rtol=1e-5, atol=1e-5)  # pad id, no mask
    out = model(right, attention_mask=right_mask, labels=torch.tensor([2]))
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, torch.tensor([2])))
