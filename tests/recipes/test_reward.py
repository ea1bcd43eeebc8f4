"""recipes/reward.py end to end on a tiny transformer built here: on builtin:preferences, where length does not decide,
the reward model beats the "longer answer wins" baseline; the saved folder scores answers; LoRA runs."""

import json

import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_hundredpage.data.builtin.preferences import make_preference_dataset

from .helpers import REPO, load_recipe
from .test_dpo import QUIET, preference_tokenizer, save_model


reward = load_recipe("reward")
CONFIG = REPO / "recipes" / "configs" / "reward" / "preferences_tiny.yaml"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("reward") / "base", preference_tokenizer())


def run_reward(model, out, *args) -> dict:
    assert reward.main([*QUIET, "--config", str(CONFIG), "--model_name_or_path", str(model), "--output_dir", str(out),
                        "--eval_strategy", "no", "--save_strategy", "no", *map(str, args)]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_reward_model_beats_the_length_baseline(base, tmp_path):
    out = tmp_path / "rm"
    metrics = run_reward(base, out, "--max_steps", 40)
    # Measured (60 test pairs): length baseline 0.5 (half the chosen answers are the longer one); reward model 1.0,
    # mean margin 4.6 after 40 steps from scratch (~6 s).
    assert metrics["length_eval_accuracy"] == 0.5
    assert metrics["eval_accuracy"] >= 0.85 and metrics["eval_margin"] > 1.0
    assert metrics["eval_num_examples"] == 60 and metrics["train_steps"] == 40

    card = ModelCard.load(out / "README.md")
    assert card.data.pipeline_tag == "text-classification" and "§6.4" in card.text
    assert "model(**inputs).logits[0, 0].item()" in card.text and "softmax" not in card.text  # the reward quick start
    values = {m["type"]: m["value"] for r in card.data.to_dict()["model-index"][0]["results"] for m in r["metrics"]}
    assert values["accuracy"] == pytest.approx(metrics["eval_accuracy"])
    assert values["baseline_accuracy"] == 0.5 and values["margin"] == pytest.approx(metrics["eval_margin"])

    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.num_labels == 1
    row = make_preference_dataset(600, seed=42)["test"][0]
    with torch.no_grad():
        scores = [model(**tokenizer(row["prompt"] + answer + tokenizer.eos_token, return_tensors="pt")).logits.item()
                  for answer in (row["chosen"], row["rejected"])]
    assert scores[0] > scores[1]


def test_reward_with_lora_trains_the_adapters_and_the_head(base, tmp_path):
    out = tmp_path / "lora"
    metrics = run_reward(base, out, "--use_peft", "true", "--lora_r", 8, "--max_steps", 3, "--dataset_num_examples", 60)
    assert metrics["train_steps"] == 3 and metrics["num_trainable_parameters"] < metrics["num_parameters"] / 5
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["task_type"] == "SEQ_CLS" and "score" in adapter["modules_to_save"]
