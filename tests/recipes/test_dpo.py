"""recipes/dpo.py end to end on tiny models built here: after an SFT warm start on builtin:preferences (whose SFT
data gives either answer at random), DPO makes the greedy answer follow the preference rule on held-out prompts; the
output contract and card; LoRA with the disabled adapter as the reference; the book's RNN and a transformers Llama."""

import json
import re
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from hf_hundredpage import (
    HundredPageRNNConfig,
    HundredPageRNNForCausalLM,
    HundredPageTransformerConfig,
    HundredPageTransformerForCausalLM,
)
from hf_hundredpage.data.builtin.preferences import make_preference_dataset
from hf_hundredpage.tokenization import train_bpe_tokenizer

from .helpers import REPO, load_recipe


dpo = load_recipe("dpo")
sft = load_recipe("sft")
CONFIG = REPO / "recipes" / "configs" / "dpo" / "preferences_tiny.yaml"
QUIET = ["--disable_tqdm", "true", "--report_to", "none"]

pytestmark = pytest.mark.usefixtures("one_thread")


def preference_tokenizer():
    data = make_preference_dataset(600, seed=7)
    return train_bpe_tokenizer([r["prompt"] + r["chosen"] + r["rejected"] for r in data["train"]], vocab_size=400)


def save_model(folder: Path, tokenizer, kind: str = "transformer") -> Path:
    ids = dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    if kind == "transformer":
        model = HundredPageTransformerForCausalLM(HundredPageTransformerConfig(
            hidden_size=64, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=128, **ids))
    elif kind == "rnn":
        model = HundredPageRNNForCausalLM(HundredPageRNNConfig(hidden_size=64, num_hidden_layers=1, **ids))
    else:
        model = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                             num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128, **ids))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tokenizer():
    return preference_tokenizer()


def warm_start(root: Path, tokenizer) -> Path:
    """A 2-layer transformer finetuned on the SFT side of builtin:preferences: the format and both answers, not the rule
    (250 steps, ~13 s)."""
    base = save_model(root / "base", tokenizer)
    out = root / "sft"
    assert sft.main([*QUIET, "--config", str(REPO / "recipes/configs/sft/instructions_tiny.yaml"), "--model_name_or_path",
                     str(base), "--output_dir", str(out), "--dataset_name", "builtin:preferences", "--dataset_config", "sft",
                     "--dataset_num_examples", "600", "--max_steps", "250", "--learning_rate", "1e-2",
                     "--eval_strategy", "no", "--save_strategy", "no"]) == 0
    return out


@pytest.fixture(scope="module")
def sft_model(tokenizer, tmp_path_factory) -> Path:
    return warm_start(tmp_path_factory.mktemp("dpo"), tokenizer)


def run_dpo(model: Path, out: Path, *args) -> dict:
    assert dpo.main([*QUIET, "--config", str(CONFIG), "--model_name_or_path", str(model), "--output_dir", str(out),
                     *map(str, args)]) == 0
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def full_run(sft_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dpo") / "full"
    run_dpo(sft_model, out, "--eval_steps", 45, "--save_steps", 45)
    return out


@pytest.mark.slow  # ~35 s: 250 SFT steps, then 90 DPO steps
def test_dpo_makes_greedy_answers_follow_the_preference(full_run):
    metrics = json.loads((full_run / "metrics.json").read_text())
    # Measured (60 held-out prompts): before 0.42 chosen / 0.58 rejected (the SFT data gives either answer);
    # after 90 steps 0.98 chosen / 0.00 rejected, validation reward accuracy 0.97.
    assert 0.2 <= metrics["eval_preference_rate_before"] <= 0.7
    assert metrics["eval_preference_rate_after"] >= 0.8
    assert metrics["eval_preference_rate_after"] >= metrics["eval_preference_rate_before"] + 0.3
    assert metrics["eval_rejected_rate_after"] <= 0.15
    assert metrics["eval_rewards/accuracies"] >= 0.8 and metrics["eval_rewards/margins"] > 0
    assert metrics["eval_num_examples"] == 60 and metrics["train_steps"] == 90
    assert metrics["reference_model"] == "frozen copy"
    assert metrics["num_trainable_parameters"] == metrics["num_parameters"]
    # Measured: 0.31 nats/token from the SFT model on the test answers (largest position 4.6; beta 0.1)
    assert 0.01 < metrics["eval_kl_to_start"] < 2.0


@pytest.mark.slow  # shares the run above
def test_dpo_writes_the_contract_and_card(full_run):
    names = {p.name for p in full_run.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "metrics.json",
            "predictions.json", "loss_curve.png", "README.md"} <= names
    metrics = json.loads((full_run / "metrics.json").read_text())
    predictions = json.loads((full_run / "predictions.json").read_text())["test"]
    assert len(predictions) == 60
    assert sum(p["match_after"] == "chosen" for p in predictions) / 60 == pytest.approx(metrics["eval_preference_rate_after"])
    card = ModelCard.load(full_run / "README.md")
    values = {m["type"]: m["value"] for r in card.data.to_dict()["model-index"][0]["results"] for m in r["metrics"]}
    assert values["preference_rate"] == pytest.approx(metrics["eval_preference_rate_after"])
    assert values["baseline_preference_rate"] == pytest.approx(metrics["eval_preference_rate_before"])
    assert "§6.4" in card.text and "model before DPO" in card.text
    assert AutoTokenizer.from_pretrained(full_run).pad_token_id is not None


def test_dpo_with_lora_uses_the_disabled_adapter_as_reference(tokenizer, tmp_path):
    model = save_model(tmp_path / "base", tokenizer)
    out = tmp_path / "lora"
    metrics = run_dpo(model, out, "--use_peft", "true", "--lora_r", 8, "--max_steps", 4, "--eval_strategy", "no",
                      "--save_strategy", "no", "--eval_max_examples", 8)
    assert metrics["reference_model"] == "base without adapter" and metrics["train_steps"] == 4
    assert metrics["num_trainable_parameters"] < metrics["num_parameters"] / 5
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(model)
    assert 0 < metrics["eval_kl_to_start"] < 1  # the policy moved away from its disabled-adapter self, a little


def test_qlora_dpo_runs_on_cpu_with_the_disabled_adapter_as_reference(tokenizer, tmp_path):
    model = save_model(tmp_path / "base", tokenizer)
    out = tmp_path / "qlora"
    metrics = run_dpo(model, out, "--use_peft", "true", "--load_in_4bit", "true", "--bnb_4bit_quant_type", "nf4",
                      "--bnb_4bit_compute_dtype", "float32", "--lora_r", 8, "--max_steps", 3, "--eval_strategy", "no",
                      "--save_strategy", "no", "--eval_max_examples", 4, "--dataset_num_examples", 60)
    assert metrics["reference_model"] == "base without adapter" and metrics["train_steps"] == 3
    assert metrics["eval_kl_to_start"] > 0 and metrics["num_trainable_parameters"] < metrics["num_parameters"] / 5
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(model)
    card = (out / "README.md").read_text()
    assert "load_in_4bit" in card and "peft" in card


@pytest.mark.parametrize("kind", ["rnn", "llama"])
def test_dpo_runs_on_the_rnn_and_a_transformers_llama(kind, tokenizer, tmp_path):
    model = save_model(tmp_path / kind, tokenizer, kind)
    metrics = run_dpo(model, tmp_path / "out", "--max_steps", 3, "--eval_strategy", "no", "--save_strategy", "no",
                      "--eval_max_examples", 4, "--precompute_ref_log_probs", "true", "--dataset_num_examples", 60)
    assert metrics["train_steps"] == 3 and metrics["reference_model"] == "precomputed"
    assert metrics["eval_kl_to_start"] > 0  # against the starting checkpoint, loaded again: nothing kept in training
    assert 0 <= metrics["eval_preference_rate_after"] <= 1


def test_every_trl_loss_type_is_accepted_and_an_unknown_one_is_one_line(tokenizer, tmp_path, capsys):
    from trl import DPOConfig

    documented = re.findall(r"'(\w+)'", DPOConfig.__dataclass_fields__["loss_type"].metadata["help"])
    assert set(dpo.LOSS_TYPES) == set(documented)
    model = save_model(tmp_path / "m", tokenizer)
    capsys.readouterr()
    code = dpo.main([*QUIET, "--config", str(CONFIG), "--model_name_or_path", str(model), "--output_dir",
                     str(tmp_path / "o"), "--loss_type", "sigmod", "--loss_weights", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"dpo.py: error: loss_type 'sigmod' is not a DPO loss: pass one or more of "
                                 f"{list(dpo.LOSS_TYPES)}"]
    assert not (tmp_path / "o").exists()
