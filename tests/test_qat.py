"""Quantization-aware training (book §6.3): torchao fake quantization in the pretraining and SFT recipes.

The reference for the fake-quantized forward is the model transformers' `TorchAoConfig` quantizes at load time (what a
user serves): both must compute the same logits, so the recipe's reported bits per byte are the served model's. The
torchao tests are marked ``torchao``; README's test command runs them after installing the ``[quantize]`` extra.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from benchmarks.common import REPO, load_recipe
from hf_hundredpage import (
    HundredPageRNNConfig,
    HundredPageRNNForCausalLM,
    HundredPageTransformerConfig,
    HundredPageTransformerForCausalLM,
)
from hf_hundredpage.compression.qat import QAT_METHODS, convert_qat, fake_quantized_layers, prepare_qat
from hf_hundredpage.compression.quantize import evaluation_texts, load_quantized


pytestmark = pytest.mark.usefixtures("one_thread")
TINY = REPO / "recipes" / "configs" / "pretrain" / "tiny_test.yaml"
pretrain = load_recipe("pretrain")


def _torchao_installed() -> bool:
    from transformers.utils import is_torchao_available

    return is_torchao_available()


def needs_torchao(test):
    """Mark `test` ``torchao`` (README's second test pass) and skip it where torchao is not installed."""
    skip = pytest.mark.skipif(not _torchao_installed(), reason="needs torchao (pip install 'hf-hundredpage[quantize]')")
    return pytest.mark.torchao(skip(test))


def _model(kind: str):
    torch.manual_seed(0)
    if kind == "transformer":
        return HundredPageTransformerForCausalLM(HundredPageTransformerConfig(
            vocab_size=96, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=32))
    if kind == "rnn":
        return HundredPageRNNForCausalLM(HundredPageRNNConfig(vocab_size=96, hidden_size=64, num_hidden_layers=2))
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=32))


def test_an_unknown_qat_method_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert pretrain.main(["--config", str(TINY), "--output_dir", str(out), "--qat", "int3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "qat must be one of torchao-8da4w, torchao-intx4wo" in err
    assert not out.exists()


@pytest.mark.skipif(_torchao_installed(), reason="torchao is installed here")
def test_qat_without_torchao_says_which_extra_to_install(tmp_path, capsys):
    out = tmp_path / "run"
    assert pretrain.main(["--config", str(TINY), "--output_dir", str(out), "--qat", "torchao-8da4w"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'hf-hundredpage[quantize]'" in err
    assert not out.exists()


@pytest.mark.parametrize("kind", ["transformer", "rnn", "llama"])
@pytest.mark.parametrize("method", QAT_METHODS)
@needs_torchao
def test_the_fake_quantized_forward_is_the_model_torchao_quantizes_at_load(kind, method, tmp_path):
    model = _model(kind).eval()
    model.save_pretrained(tmp_path / "fp32")
    served = load_quantized(str(tmp_path / "fp32"), method, ["lm_head"])  # transformers' TorchAoConfig at load
    trained = copy.deepcopy(model)
    chosen = prepare_qat(trained, method, skip_modules=["lm_head"])
    assert chosen and "lm_head" not in chosen and len(fake_quantized_layers(trained)) == len(chosen)
    input_ids = torch.randint(0, 96, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference, fake, full = served(input_ids).logits, trained(input_ids).logits, model(input_ids).logits
    torch.testing.assert_close(fake, reference, rtol=0, atol=1e-5)
    assert (fake - full).abs().max() > 1e-2 * full.abs().max()  # the rounding is really applied


@needs_torchao
def test_prepare_keeps_the_parameters_and_trains_the_master_weights():
    model = _model("transformer")
    before = {name: id(p) for name, p in model.named_parameters()}
    start = model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    prepare_qat(model, "torchao-8da4w")
    assert {name: id(p) for name, p in model.named_parameters()} == before  # an optimizer sees the same tensors
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    input_ids = torch.randint(0, 96, (2, 16), generator=torch.Generator().manual_seed(2))
    model(input_ids=input_ids, labels=input_ids).loss.backward()
    optimizer.step()
    assert not torch.equal(model.model.layers[0].self_attn.q_proj.weight, start)  # straight-through gradients

    assert convert_qat(model) == 12 and fake_quantized_layers(model) == []  # 2 blocks x (4 attention + 2 MLP)
    assert type(model.model.layers[0].self_attn.q_proj) is torch.nn.Linear
    assert {name: id(p) for name, p in model.named_parameters()} == before
    assert model.config.qat_method == "torchao-8da4w" and model.config.qat_skip_modules == ["lm_head"]


@needs_torchao
def test_qat_rejects_adapters_and_indivisible_layers():
    from hf_hundredpage.compression.qat import QATArguments

    with pytest.raises(ValueError, match="use QLoRA"):
        QATArguments(qat="torchao-8da4w").prepare_qat(_model("transformer"), adapters=True)
    odd = HundredPageTransformerForCausalLM(HundredPageTransformerConfig(
        vocab_size=96, hidden_size=48, num_hidden_layers=1, num_attention_heads=4))
    with pytest.raises(ValueError, match="not a multiple of qat_group_size 32"):
        prepare_qat(odd, "torchao-intx4wo")


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """The tiny pretraining config twice from the same seed: without and with ``--qat torchao-8da4w``."""
    root = tmp_path_factory.mktemp("qat")
    runs = {}
    for name, extra in (("plain", []), ("qat", ["--qat", "torchao-8da4w"])):
        runs[name] = root / name
        args = ["--config", str(TINY), "--output_dir", str(runs[name]), "--hidden_size", "64", "--num_attention_heads",
                "4", "--disable_tqdm", "true", "--save_strategy", "no", "--ngram_mixture", "false", *extra]
        assert pretrain.main(args) == 0
    return runs


@needs_torchao
def test_pretrain_with_qat_reports_the_served_models_bits_per_byte(pretrained):
    from hf_hundredpage.evaluation import evaluate_causal_lm

    out = pretrained["qat"]
    metrics = json.loads((out / "metrics.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert metrics["qat_method"] == config["qat_method"] == "torchao-8da4w" and config["qat_group_size"] == 32
    plain = AutoModelForCausalLM.from_pretrained(out)  # float32 master weights, plain nn.Linear layers
    assert fake_quantized_layers(plain) == [] and getattr(plain.config, "quantization_config", None) is None

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out)
    texts = evaluation_texts(max_documents=20)  # tiny_test.yaml: eval_max_documents 20, block_size 32
    served = load_quantized(str(out), "torchao-8da4w", config["qat_skip_modules"])
    scores = evaluate_causal_lm(served, tokenizer, texts, max_length=32, stride=16)
    assert scores["bits_per_byte"] == pytest.approx(metrics["eval_bits_per_byte"], rel=1e-5)
    master = evaluate_causal_lm(plain, tokenizer, texts, max_length=32, stride=16)
    assert master["bits_per_byte"] != pytest.approx(metrics["eval_bits_per_byte"], rel=1e-5)


@needs_torchao
def test_compare_puts_qat_beside_post_training_quantization(pretrained, tmp_path, capsys):
    from hf_hundredpage.cli import main as cli

    report_file = tmp_path / "compare.json"
    assert cli(["quantize", str(pretrained["plain"]), "--compare", "--methods", "torchao-intx4wo",
                "--qat_model", str(pretrained["qat"]), "--eval_max_documents", "20", "--max_new_tokens", "8",
                "--json", str(report_file)]) == 0
    rows = {row["method"]: row for row in json.loads(report_file.read_text())["rows"]}
    assert list(rows) == ["fp32", "bf16", "torchao-intx4wo", "torchao-8da4w", "fp32 (QAT)", "torchao-8da4w (QAT)"]
    assert all("error" not in row for row in rows.values())
    qat_metrics = json.loads((pretrained["qat"] / "metrics.json").read_text())
    plain_metrics = json.loads((pretrained["plain"] / "metrics.json").read_text())
    # The same documents and windows as the recipes' own evaluation: the rows reproduce what they reported.
    assert rows["fp32"]["bits_per_byte"] == pytest.approx(plain_metrics["eval_bits_per_byte"], rel=1e-5)
    assert rows["torchao-8da4w (QAT)"]["bits_per_byte"] == pytest.approx(qat_metrics["eval_bits_per_byte"], rel=1e-5)
    assert "| torchao-8da4w (QAT) | 4 |" in capsys.readouterr().out

    with pytest.raises(ValueError, match="was not trained with --qat"):
        from hf_hundredpage.compression.quantize import compare_methods

        compare_methods(pretrained["plain"], ["torchao-8da4w"], qat_model=pretrained["plain"])


@needs_torchao
def test_sft_with_qat_evaluates_the_served_model_before_and_after(pretrained, tmp_path):
    sft = load_recipe("sft")
    out = tmp_path / "sft"
    assert sft.main([
        "--config", str(REPO / "recipes" / "configs" / "sft" / "instructions_tiny.yaml"), "--model_name_or_path",
        str(pretrained["plain"]), "--output_dir", str(out), "--dataset_num_examples", "64", "--max_steps", "4",
        "--eval_strategy", "no", "--save_strategy", "no", "--eval_max_examples", "4", "--eval_max_new_tokens", "4",
        "--disable_tqdm", "true", "--qat", "torchao-intx4wo", "--qat_group_size", "64",
    ]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert metrics["qat_method"] == config["qat_method"] == "torchao-intx4wo" and config["qat_group_size"] == 64
    assert fake_quantized_layers(AutoModelForCausalLM.from_pretrained(out)) == []
