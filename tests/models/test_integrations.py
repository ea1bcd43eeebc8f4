"""PEFT LoRA and bitsandbytes quantization on both models (the modules are the `nn.Linear`s they expect)."""

import bitsandbytes as bnb
import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

from hf_hundredpage import (
    HundredPageRNNConfig,
    HundredPageRNNForCausalLM,
    HundredPageTransformerConfig,
    HundredPageTransformerForCausalLM,
)

from .helpers import tiny_inputs


VOCAB = 67
MODELS = {
    "transformer": (
        HundredPageTransformerForCausalLM,
        HundredPageTransformerConfig(vocab_size=VOCAB, hidden_size=64, num_attention_heads=4, pad_token_id=0),
        ["q_proj", "v_proj"],
        {"q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"},
    ),
    "rnn": (
        HundredPageRNNForCausalLM,
        HundredPageRNNConfig(vocab_size=VOCAB, hidden_size=64, pad_token_id=0),
        ["hidden_proj"],
        {"input_proj", "hidden_proj"},
    ),
}


def lora_modules(model):
    return {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if hasattr(module, "lora_A")}


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("targets", ["all-linear", "by-name"])
def test_lora_trains_and_merges(kind, targets):
    model_cls, config, by_name, all_linear = MODELS[kind]
    torch.manual_seed(0)
    model = model_cls(config)
    target_modules = "all-linear" if targets == "all-linear" else by_name
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=target_modules))
    assert lora_modules(peft_model) == (all_linear if targets == "all-linear" else set(by_name))
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)

    ids, _ = tiny_inputs(vocab=VOCAB, batch=4, length=12)
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=3e-2)
    peft_model.train()
    losses = []
    for _ in range(20):
        loss = peft_model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05, losses  # the adapters alone reduce the loss

    peft_model.eval()
    with torch.no_grad():
        adapted = peft_model(input_ids=ids).logits
        merged = peft_model.merge_and_unload()
        assert isinstance(merged, model_cls) and not lora_modules(merged)
        torch.testing.assert_close(merged(ids).logits, adapted, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("bits", [8, 4])
def test_bitsandbytes_loads_and_runs_on_cpu(tmp_path, kind, bits):
    model_cls, config, _, quantizable = MODELS[kind]
    torch.manual_seed(0)
    reference = model_cls(config).eval()
    reference.save_pretrained(tmp_path)
    if bits == 8:
        quantization = BitsAndBytesConfig(load_in_8bit=True)
        expected_cls = bnb.nn.Linear8bitLt
    else:
        quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)
        expected_cls = bnb.nn.Linear4bit
    model = AutoModelForCausalLM.from_pretrained(tmp_path, quantization_config=quantization, device_map="cpu").eval()
    quantized = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, expected_cls)}
    assert quantized == quantizable  # lm_head stays in full precision, as transformers does for every model
    assert model.get_memory_footprint() < reference.get_memory_footprint()

    ids, _ = tiny_inputs(vocab=VOCAB, batch=2, length=10)
    with torch.no_grad():
        out = model(ids).logits.float()
        ref = reference(ids).logits
    assert torch.isfinite(out).all() and out.shape == ref.shape
    # Quantization error is small relative to the spread of the logits.
    assert (out - ref).abs().mean() < 0.25 * ref.std()
    generated = model.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=0)
    assert generated.shape == (2, 14)
