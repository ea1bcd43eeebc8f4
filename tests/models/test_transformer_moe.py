"""Sparse mixture of experts in the transformer (book §6.1): parity with Mixtral, caching, padding, remote code,
LoRA on the experts, 4-bit loading, and dense configs left as they were."""

import json
import subprocess
import sys

import bitsandbytes as bnb
import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import (
    AutoModelForCausalLM,
    BitsAndBytesConfig,
    LlamaConfig,
    LlamaForCausalLM,
    MixtralConfig,
    MixtralForCausalLM,
    MixtralForSequenceClassification,
)
from transformers.modeling_outputs import CausalLMOutputWithPast

from hf_hundredpage import (
    HundredPageTransformerConfig,
    HundredPageTransformerForCausalLM,
    HundredPageTransformerForSequenceClassification,
)
from hf_hundredpage.models.transformer.modeling_transformer import HundredPageSparseMoeBlock

from .helpers import assert_cached_greedy_equals_uncached, assert_left_padding_invariant, tiny_inputs
from .test_remote_code import REMOTE_SCRIPT


VOCAB = 97


def moe_config(**kwargs):
    """The book's block (ungated ReLU MLP with biases, interleaved RoPE) with 4 experts, top-2, in every block."""
    defaults = dict(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, pad_token_id=0,
        num_local_experts=4, num_experts_per_tok=2,
    )
    return HundredPageTransformerConfig(**{**defaults, **kwargs})


def mixtral_shaped(**kwargs):
    """Our options that make the model Mixtral: SwiGLU experts, final norm, half-split RoPE, no biases."""
    return moe_config(
        gated_mlp=True, hidden_act="silu", final_norm=True, rope_interleaved=False, mlp_bias=False,
        rms_norm_eps=1e-6, intermediate_size=48, num_key_value_heads=2, **kwargs,
    )


def mixtral_with_our_weights(ours: HundredPageTransformerForCausalLM, model_cls=MixtralForCausalLM, **kwargs):
    """A transformers Mixtral of the same shape, loaded with our weights: the names are the same except the experts,
    which Mixtral stores stacked as `gate_up_proj` (E, 2I, H) and `down_proj` (E, H, I)."""
    c = ours.config
    config = MixtralConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
        num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
        num_key_value_heads=c.num_key_value_heads, rms_norm_eps=c.rms_norm_eps, pad_token_id=c.pad_token_id,
        num_local_experts=c.num_local_experts, num_experts_per_tok=c.num_experts_per_tok,
        router_aux_loss_coef=c.router_aux_loss_coef, router_jitter_noise=c.router_jitter_noise,
        rope_parameters={"rope_type": "default", "rope_theta": c.rope_theta}, **kwargs,
    )
    mixtral = model_cls(config)
    state = {k: v for k, v in ours.state_dict().items() if ".experts." not in k}
    for i, layer in enumerate(ours.model.layers):
        experts = layer.mlp.experts
        state[f"model.layers.{i}.mlp.experts.gate_up_proj"] = torch.stack(
            [torch.cat([e.gate_proj.weight, e.up_proj.weight]) for e in experts]
        )
        state[f"model.layers.{i}.mlp.experts.down_proj"] = torch.stack([e.down_proj.weight for e in experts])
    missing, unexpected = mixtral.load_state_dict(state, strict=False)
    assert not unexpected and all(k == "score.weight" for k in missing), (missing, unexpected)
    return mixtral


def sparse_layers(model):
    return [i for i, layer in enumerate(model.model.layers) if hasattr(layer.mlp, "experts")]


def test_dense_configs_keep_llamas_parameter_names_and_output_type():
    config = HundredPageTransformerConfig(
        vocab_size=VOCAB, hidden_size=32, num_attention_heads=4, gated_mlp=True, hidden_act="silu",
        final_norm=True, mlp_bias=False, intermediate_size=48,
    )
    assert config.num_local_experts == 0
    ours = HundredPageTransformerForCausalLM(config)
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4))
    assert set(ours.state_dict()) == {k for k in llama.state_dict() if "rotary" not in k}
    out = ours(torch.tensor([[1, 2, 3]]), output_router_logits=True)
    assert type(out) is CausalLMOutputWithPast and set(out.keys()) == {"logits", "cache"}


def test_a_saved_dense_config_without_the_moe_fields_loads_dense(tmp_path):
    HundredPageTransformerForCausalLM(HundredPageTransformerConfig(vocab_size=VOCAB, hidden_size=32, num_attention_heads=4)).save_pretrained(tmp_path)
    config_path = tmp_path / "config.json"
    saved = json.loads(config_path.read_text())
    moe_fields = ["num_local_experts", "num_experts_per_tok", "decoder_sparse_step", "mlp_only_layers",
                  "output_router_logits", "router_aux_loss_coef", "router_z_loss_coef", "router_jitter_noise"]
    config_path.write_text(json.dumps({k: v for k, v in saved.items() if k not in moe_fields}))
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert sparse_layers(model) == [] and model.config.num_local_experts == 0


@pytest.mark.parametrize(
    "bad,message",
    [
        (dict(num_experts_per_tok=5), "num_experts_per_tok"),
        (dict(num_experts_per_tok=0), "num_experts_per_tok"),
        (dict(num_local_experts=-1), "num_local_experts"),
        (dict(mlp_only_layers=[2]), "mlp_only_layers"),
        (dict(mlp_only_layers=[0, 1]), "no block is sparse"),
        (dict(decoder_sparse_step=0), "decoder_sparse_step"),
        (dict(decoder_sparse_step=3), "no block is sparse"),
        (dict(router_aux_loss_coef=-0.1), "router_aux_loss_coef"),
        (dict(router_jitter_noise=1.5), "router_jitter_noise"),
    ],
)
def test_invalid_moe_options_are_rejected_with_the_field_named(bad, message):
    with pytest.raises(Exception, match=message):
        moe_config(**bad)


def test_sparse_blocks_follow_decoder_sparse_step_and_mlp_only_layers():
    assert sparse_layers(HundredPageTransformerForCausalLM(moe_config(num_hidden_layers=4))) == [0, 1, 2, 3]
    assert sparse_layers(HundredPageTransformerForCausalLM(moe_config(num_hidden_layers=4, decoder_sparse_step=2))) == [1, 3]
    model = HundredPageTransformerForCausalLM(moe_config(num_hidden_layers=4, decoder_sparse_step=2, mlp_only_layers=[3]))
    assert sparse_layers(model) == [1]
    assert model.config.num_experts == 4  # Mixtral's alias
    names = {n for n, _ in model.named_parameters()}
    assert {"model.layers.1.mlp.gate.weight", "model.layers.1.mlp.experts.3.up_proj.weight", "model.layers.0.mlp.up_proj.weight"} <= names
    assert "model.layers.1.mlp.gate.bias" not in names and model.model.layers[1].mlp.gate.weight.shape == (4, 32)


@pytest.fixture(params=["grouped_mm", "per_expert"])
def dispatch(request, monkeypatch):
    """Run a test through both dispatch paths: one `grouped_mm` per projection (plain `nn.Linear` experts) and one
    call per expert (what PEFT-wrapped or quantized experts take)."""
    if request.param == "per_expert":
        monkeypatch.setattr(HundredPageSparseMoeBlock, "can_group", lambda self: False)
    else:
        assert hasattr(torch.nn.functional, "grouped_mm")
    return request.param


@pytest.mark.parametrize("gated", [False, True], ids=["book_relu_mlp_with_biases", "swiglu"])
def test_sparse_block_is_the_routed_weighted_sum_of_its_experts(dispatch, gated):
    """The block's output, token by token, is `sum_k w_k * expert_k(x)` over the renormalised top-k softmax weights
    (book §6.1), written out naively here."""
    torch.manual_seed(0)
    config = moe_config(gated_mlp=gated, hidden_act="silu" if gated else "relu", num_local_experts=5, num_experts_per_tok=3)
    block = HundredPageSparseMoeBlock(config).eval()
    for param in block.parameters():  # non-zero biases too
        torch.nn.init.normal_(param, std=0.2)
    x = torch.randn(2, 7, 32)
    with torch.no_grad():
        out, logits = block(x)
        probs = (x.reshape(-1, 32) @ block.gate.weight.T).softmax(-1)
        expected = torch.zeros(14, 32)
        for t, token in enumerate(x.reshape(-1, 32)):
            top = probs[t].topk(3)
            for weight, j in zip(top.values / top.values.sum(), top.indices, strict=True):
                expected[t] += weight * block.experts[j](token)
    torch.testing.assert_close(logits.softmax(-1), probs)
    torch.testing.assert_close(out.reshape(-1, 32), expected, rtol=1e-5, atol=1e-6)


def test_mixtral_shaped_options_compute_mixtrals_logits_and_losses(dispatch):
    torch.manual_seed(0)
    ours = HundredPageTransformerForCausalLM(mixtral_shaped(router_aux_loss_coef=0.1)).eval()
    mixtral = mixtral_with_our_weights(ours).eval()
    ids, mask = tiny_inputs(vocab=VOCAB, batch=3, length=11, left_pad=(0, 3, 5))
    labels = ids.masked_fill(mask == 0, -100)
    with torch.no_grad():
        expected = mixtral(ids, attention_mask=mask, labels=labels, output_router_logits=True)
        got = ours(ids, attention_mask=mask, labels=labels, output_router_logits=True)
    torch.testing.assert_close(got.logits, expected.logits, rtol=1e-4, atol=1e-4)
    assert len(got.router_logits) == len(expected.router_logits) == 2
    for g, e in zip(got.router_logits, expected.router_logits, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5)
    assert expected.aux_loss > 1.0  # the balancing loss is at least 1, so it is really there
    torch.testing.assert_close(got.aux_loss, expected.aux_loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got.loss, expected.loss, rtol=1e-5, atol=1e-6)
    greedy = dict(max_new_tokens=8, do_sample=False, pad_token_id=0, eos_token_id=2)
    assert torch.equal(ours.generate(ids, attention_mask=mask, **greedy), mixtral.generate(ids, attention_mask=mask, **greedy))


def test_training_step_matches_mixtral_with_jitter_noise_gradients_included(dispatch):
    """In training the router's jitter draws the same noise as Mixtral's, and the gradients of the LM loss plus the
    balancing loss equal Mixtral's, router included, with activation checkpointing on our side."""
    torch.manual_seed(0)
    ours = HundredPageTransformerForCausalLM(mixtral_shaped(router_jitter_noise=0.1, router_aux_loss_coef=0.5)).train()
    mixtral = mixtral_with_our_weights(ours).train()
    ours.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    assert all(layer.gradient_checkpointing for layer in ours.model.layers)
    ids, _ = tiny_inputs(vocab=VOCAB, batch=2, length=9)
    losses, grads = [], []
    for model in (mixtral, ours):
        torch.manual_seed(1)
        loss = model(ids, labels=ids, output_router_logits=True).loss
        loss.backward()
        losses.append(loss)
        grads.append({n: p.grad for n, p in model.named_parameters() if ".experts." not in n})
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-6, msg=name)
    expert_grad = torch.cat([ours.model.layers[0].mlp.experts[0].gate_proj.weight.grad, ours.model.layers[0].mlp.experts[0].up_proj.weight.grad])
    torch.testing.assert_close(expert_grad, mixtral.model.layers[0].mlp.experts.gate_up_proj.grad[0], rtol=1e-4, atol=1e-6)
    with torch.no_grad():  # and no jitter in eval mode: two forwards agree
        ours.eval()
        torch.testing.assert_close(ours(ids).logits, ours(ids).logits, rtol=0, atol=0)
        ours.train()
        assert not torch.equal(ours(ids).logits, ours(ids).logits)


def test_router_z_loss_is_added_to_the_loss():
    torch.manual_seed(0)
    model = HundredPageTransformerForCausalLM(moe_config(router_z_loss_coef=0.01, output_router_logits=True)).eval()
    ids, mask = tiny_inputs(vocab=VOCAB, batch=2, length=8, left_pad=(0, 3))
    with torch.no_grad():
        out = model(ids, attention_mask=mask, labels=ids)
        plain = model(ids, attention_mask=mask, labels=ids, output_router_logits=False)
    real = mask.reshape(-1).bool()
    z = torch.stack([logits[real].logsumexp(-1).square().mean() for logits in out.router_logits]).mean()
    torch.testing.assert_close(out.router_z_loss, z)
    torch.testing.assert_close(out.loss, plain.loss + 0.001 * out.aux_loss + 0.01 * z)


def test_cached_greedy_decoding_equals_uncached(dispatch):
    torch.manual_seed(0)
    assert_cached_greedy_equals_uncached(HundredPageTransformerForCausalLM(moe_config(output_router_logits=True)).eval(), vocab=VOCAB)


def test_left_padding_does_not_change_real_tokens():
    torch.manual_seed(0)
    assert_left_padding_invariant(HundredPageTransformerForCausalLM(mixtral_shaped(num_hidden_layers=3, decoder_sparse_step=2)).eval(), vocab=VOCAB)


def test_sequence_classification_matches_mixtrals_classifier():
    torch.manual_seed(0)
    ours = HundredPageTransformerForSequenceClassification(mixtral_shaped(num_labels=3)).eval()
    mixtral = mixtral_with_our_weights(ours, MixtralForSequenceClassification, num_labels=3).eval()
    mixtral.score.weight.data.copy_(ours.score.weight)
    ids, _ = tiny_inputs(vocab=VOCAB, batch=2, length=7)
    ids[1, 4:] = 0  # right padding, found through pad_token_id as Mixtral does
    labels = torch.tensor([0, 2])
    with torch.no_grad():
        got, expected = ours(ids, labels=labels), mixtral(ids, labels=labels)
    torch.testing.assert_close(got.logits, expected.logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got.loss, expected.loss, rtol=1e-5, atol=1e-5)


def test_moe_folder_loads_without_the_package(tmp_path, one_thread):  # one thread on both sides: bit-equal sums
    torch.manual_seed(0)
    model = HundredPageTransformerForCausalLM(moe_config(decoder_sparse_step=2, output_router_logits=True)).eval()
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    ids, _ = tiny_inputs(vocab=VOCAB, batch=2, length=6)
    torch.save(ids, tmp_path / "ids.pt")
    script = tmp_path / "remote.py"
    script.write_text(REMOTE_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), str(folder), str(tmp_path / "ids.pt"), str(tmp_path / "out.pt")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HF_HOME": str(tmp_path / "hf_home"), "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    remote = torch.load(tmp_path / "out.pt")
    assert remote["module"].startswith("transformers_modules")
    with torch.no_grad():
        torch.testing.assert_close(remote["logits"], model(ids).logits, rtol=0, atol=0)
    assert torch.equal(remote["generated"], model.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=0))


def test_lora_on_the_experts_trains_and_only_the_adapters_change():
    torch.manual_seed(0)
    model = HundredPageTransformerForCausalLM(moe_config(gated_mlp=True, hidden_act="silu", output_router_logits=True))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["gate_proj", "up_proj", "down_proj"]))
    adapted = {n.removeprefix("base_model.model.").removesuffix(".lora_A.default") for n, m in peft_model.named_modules() if n.endswith("lora_A.default")}
    assert adapted == {f"model.layers.{i}.mlp.experts.{j}.{p}" for i in range(2) for j in range(4) for p in ("gate_proj", "up_proj", "down_proj")}

    assert not peft_model.base_model.model.model.layers[0].mlp.can_group()  # LoRA-wrapped experts run one by one
    ids, _ = tiny_inputs(vocab=VOCAB, batch=4, length=12)
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=3e-2)
    peft_model.train()
    losses = []
    for _ in range(15):
        out = peft_model(input_ids=ids, labels=ids)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(out.loss.item())
    assert out.aux_loss is not None and losses[-1] < losses[0] - 0.05, losses
    for name, param in peft_model.named_parameters():
        if "lora_" not in name:
            key = name.removeprefix("base_model.model.").replace(".base_layer", "")
            assert torch.equal(param, before[key]), name


def test_4bit_loading_quantizes_the_experts_and_generates(tmp_path):
    torch.manual_seed(0)
    reference = HundredPageTransformerForCausalLM(moe_config(hidden_size=64, intermediate_size=64, gated_mlp=True, hidden_act="silu")).eval()
    reference.save_pretrained(tmp_path)
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(tmp_path, quantization_config=quantization, device_map="cpu").eval()
    quantized = {name.split("layers.0.")[-1] for name, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit) and ".layers.0." in name}
    assert {"mlp.experts.3.gate_proj", "mlp.experts.3.up_proj", "mlp.experts.3.down_proj", "self_attn.q_proj"} <= quantized
    assert "mlp.gate" not in quantized and model.model.layers[0].mlp.gate.weight.dtype == torch.float32  # the router
    ids, _ = tiny_inputs(vocab=VOCAB, batch=2, length=10)
    with torch.no_grad():
        out = model(ids).logits.float()
        ref = reference(ids).logits
    assert torch.isfinite(out).all() and (out - ref).abs().mean() < 0.25 * ref.std()
    generated = model.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=0)
    assert generated.shape == (2, 14) and torch.equal(generated[:, :10], ids)


def test_fp16_loading_keeps_routers_in_fp32_and_dense_gate_proj_in_fp16(tmp_path):
    torch.manual_seed(0)
    reference = HundredPageTransformerForCausalLM(moe_config(gated_mlp=True, hidden_act="silu", decoder_sparse_step=2)).eval()
    reference.save_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float16).eval()
    assert model.model.layers[1].mlp.gate.weight.dtype == torch.float32
    assert model.model.layers[0].mlp.gate_proj.weight.dtype == model.model.layers[1].mlp.experts[0].gate_proj.weight.dtype == torch.float16
    ids, _ = tiny_inputs(vocab=VOCAB, batch=2, length=6)
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits.float(), reference(ids).logits, rtol=0, atol=2e-2)
