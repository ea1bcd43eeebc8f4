"""recipes/classify.py end to end on tiny models built here (our transformer and RNN, a GPT-2 whose tokenizer has no
pad token): learning beyond the majority class, the output contract, the bag-of-words baseline against scikit-learn,
LoRA with only adapters and the head trained, the text-generation route, and bad input."""

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from peft import PeftModel
from safetensors.torch import load_file
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
)

from hf_hundredpage import (
    HundredPageRNNConfig,
    HundredPageRNNForCausalLM,
    HundredPageTransformerConfig,
    HundredPageTransformerForCausalLM,
)
from hf_hundredpage.data import default_tokenizer_path
from hf_hundredpage.data.classification import load_classification_dataset, to_prompt_completion
from hf_hundredpage.evaluation.classification import exact_match_accuracy
from hf_hundredpage.finetuning import HundredPageModelConfig, load_model
from hf_hundredpage.hub import check_loadable_folder

from .helpers import REPO, load_recipe


classify = load_recipe("classify")
TINY = REPO / "recipes" / "configs" / "classify" / "emotions_tiny.yaml"
LABELS = {0: "anger", 1: "fear", 2: "joy", 3: "sadness"}
CONTRACT = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "metrics.json",
            "loss_curve.png", "README.md"}
BASELINE_KEYS = {"eval_accuracy", "eval_macro_f1", "bow_eval_accuracy", "bow_eval_macro_f1", "majority_eval_accuracy"}
# The data every run below uses: builtin:emotions (800 / 100 / 100 rows) with the recipe's default seed.
DATA_ARGS = {"dataset_name": "builtin:emotions", "seed": 42}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Untrained 1-layer, 32-wide models with the package tokenizer; GPT-2's tokenizer has no pad token, as GPT-2's."""
    root = tmp_path_factory.mktemp("classify_models")
    tokenizer = AutoTokenizer.from_pretrained(default_tokenizer_path())
    ids = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    built = {
        "transformer": HundredPageTransformerForCausalLM(HundredPageTransformerConfig(
            vocab_size=len(tokenizer), hidden_size=32, num_attention_heads=2, num_hidden_layers=1,
            max_position_embeddings=128, **ids)),
        "rnn": HundredPageRNNForCausalLM(HundredPageRNNConfig(
            vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, **ids)),
        "gpt2": GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=128, n_embd=32, n_layer=1, n_head=2,
                                           bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)),
    }
    folders = {}
    for name, model in built.items():
        folders[name] = root / name
        model.save_pretrained(folders[name])
        if name == "gpt2":
            tokenizer.pad_token = None
        tokenizer.save_pretrained(folders[name])
    return folders


def run_classify(*args) -> int:
    return classify.main(["--disable_tqdm", "true", "--report_to", "none", *map(str, args)])


@pytest.fixture(scope="module")
def head_runs(models, tmp_path_factory) -> dict[str, Path]:
    """One classifier run per architecture, on the tiny config (3 epochs of 800 sentences at lr 1e-2)."""
    root = tmp_path_factory.mktemp("classify_runs")
    outputs = {}
    for name, folder in models.items():
        outputs[name] = root / name
        assert run_classify("--config", TINY, "--model_name_or_path", folder, "--output_dir", outputs[name]) == 0
    return outputs


def emotions_splits():
    return load_classification_dataset(**DATA_ARGS)[0]


def accuracy_of_saved_classifier(model, tokenizer, data) -> float:
    model.eval()
    batch = tokenizer(list(data["text"]), padding=True, return_tensors="pt")
    with torch.no_grad():
        predictions = model(**batch).logits.argmax(-1)
    return (predictions == torch.tensor(list(data["label"]))).float().mean().item()


@pytest.mark.parametrize("architecture", ["transformer", "rnn", "gpt2"])
def test_classifier_beats_the_majority_class_and_writes_the_contract(head_runs, architecture):
    out = head_runs[architecture]
    assert CONTRACT <= {p.name for p in out.iterdir()}
    check_loadable_folder(out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert BASELINE_KEYS <= set(metrics) and metrics["method"] == "head"
    assert metrics["eval_accuracy"] >= metrics["majority_eval_accuracy"] + 0.2, metrics
    assert metrics["eval_macro_f1"] >= metrics["majority_eval_macro_f1"] + 0.2, metrics

    # The saved folder reloads as a classifier that scores exactly eval_accuracy on the test split.
    model = AutoModelForSequenceClassification.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.id2label == LABELS
    test = emotions_splits()["test"]
    assert accuracy_of_saved_classifier(model, tokenizer, test) == pytest.approx(metrics["eval_accuracy"], abs=1e-6)

    card = ModelCard.load(out / "README.md")
    assert card.data.pipeline_tag == "text-classification"
    values = {m["type"]: m["value"] for r in card.data.to_dict()["model-index"][0]["results"] for m in r["metrics"]}
    assert values["accuracy"] == pytest.approx(metrics["eval_accuracy"], abs=1e-3)


def test_gpt2_gets_a_pad_token_and_pools_the_last_real_token(head_runs):
    out = head_runs["gpt2"]
    config = json.loads((out / "config.json").read_text())
    assert config["pad_token_id"] == config["eos_token_id"] == 1  # GPT-2 pads with EOS (book §5.6)
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    tokenizer.pad_token = tokenizer.eos_token
    texts = ["i feel glad", "my sister looked terrified when we talked about the rent"]
    with torch.no_grad():
        padded = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
        alone = torch.cat([model(**tokenizer(t, return_tensors="pt")).logits for t in texts])
    torch.testing.assert_close(padded, alone, rtol=1e-5, atol=1e-5)


def test_baselines_in_metrics_equal_scikit_learn_on_the_same_splits(head_runs):
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    metrics = json.loads((head_runs["transformer"] / "metrics.json").read_text())
    data = emotions_splits()
    vectorizer = CountVectorizer(max_features=10_000, binary=True)
    train_texts, train_labels = list(data["train"]["text"]), list(data["train"]["label"])
    reference = LogisticRegression(random_state=42, max_iter=1000).fit(vectorizer.fit_transform(train_texts), train_labels)
    predictions = reference.predict(vectorizer.transform(list(data["test"]["text"])))
    truth = np.array(list(data["test"]["label"]))
    assert metrics["bow_eval_accuracy"] == pytest.approx(np.mean(predictions == truth))
    assert metrics["bow_eval_macro_f1"] == pytest.approx(f1_score(truth, predictions, average="macro"))
    majority = Counter(train_labels).most_common(1)[0][0]
    assert metrics["majority_eval_accuracy"] == pytest.approx(np.mean(truth == majority))
    assert metrics["num_train_examples"] == 800 and metrics["num_test_examples"] == 100


@pytest.mark.parametrize("quantized", [False, True], ids=["lora", "qlora"])
def test_lora_trains_only_the_adapters_and_the_head(models, tmp_path, quantized):
    out = tmp_path / "lora"
    extra = ["--load_in_4bit", "true"] if quantized else []
    assert run_classify("--config", TINY, "--model_name_or_path", models["transformer"], "--output_dir", out,
                        "--use_peft", "true", "--lora_r", 4, "--lora_alpha", 8, "--lora_dropout", 0.0, *extra) == 0
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert Path(adapter["base_model_name_or_path"]) == models["transformer"].resolve()
    assert adapter["task_type"] == "SEQ_CLS" and "score" in adapter["modules_to_save"]
    metrics = json.loads((out / "metrics.json").read_text())
    # rank 4 on q/k/v/o (32 -> 32), up (32 -> 128), down (128 -> 32): 4 * (4 * 64 + 160 + 160); head: 32 x 4 labels.
    assert metrics["trainable_parameters"] == 4 * (4 * 64 + 160 + 160) + 32 * 4
    saved = load_file(str(out / "adapter_model.safetensors"))
    assert saved and all("lora_" in key or ".score." in key for key in saved), sorted(saved)
    assert metrics["eval_accuracy"] > metrics["majority_eval_accuracy"]

    # The adapter on its base (4-bit again for QLoRA: the run evaluated between steps, see guard_cpu_4bit) scores
    # exactly what the run reported.
    base_args = HundredPageModelConfig(model_name_or_path=adapter["base_model_name_or_path"], load_in_4bit=quantized)
    base = load_model(base_args, task="sequence-classification", num_labels=4, pad_token_id=2)
    model = PeftModel.from_pretrained(base, out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    accuracy = accuracy_of_saved_classifier(model, tokenizer, emotions_splits()["test"])
    assert accuracy == pytest.approx(metrics["eval_accuracy"], abs=1e-6)


def generation_args(model: Path, out: Path, *extra) -> list:
    return ["--config", TINY, "--model_name_or_path", model, "--output_dir", out, "--method", "generation",
            "--max_length", 64, "--per_device_eval_batch_size", 16, *extra]


def test_generation_route_end_to_end(models, tmp_path):
    out = tmp_path / "generation"
    assert run_classify(*generation_args(models["transformer"], out, "--max_steps", 4, "--max_train_samples", 64,
                                         "--max_eval_samples", 24, "--eval_strategy", "no", "--logging_steps", 2)) == 0
    assert CONTRACT | {"generation_config.json"} <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    assert BASELINE_KEYS <= set(metrics) and metrics["method"] == "generation" and metrics["train_steps"] == 4
    assert ModelCard.load(out / "README.md").data.pipeline_tag == "text-generation"
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["eos_token_id"] == 1 and generation["pad_token_id"] == 2

    # eval_accuracy is the exact match of the saved model's greedy answers on the test prompts.
    data, id2label, _ = load_classification_dataset(**DATA_ARGS, max_train_samples=64, max_eval_samples=24)
    prompts = to_prompt_completion(data["test"], id2label)
    model, tokenizer = AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)
    labels = [id2label[i] for i in data["test"]["label"]]
    assert exact_match_accuracy(model, tokenizer, list(prompts["prompt"]), labels) == pytest.approx(metrics["eval_accuracy"])


@pytest.mark.slow
def test_generation_route_learns_the_labels(models, tmp_path):
    out = tmp_path / "generation"
    assert run_classify(*generation_args(models["transformer"], out, "--num_train_epochs", 8, "--learning_rate", 3e-3)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval_accuracy"] >= metrics["majority_eval_accuracy"] + 0.2, metrics


def test_early_stopping_keeps_the_best_checkpoint(models, tmp_path):
    out = tmp_path / "early"
    assert run_classify("--config", TINY, "--model_name_or_path", models["rnn"], "--output_dir", out,
                        "--max_train_samples", 160, "--num_train_epochs", 3, "--early_stopping_patience", 1,
                        "--save_strategy", "epoch", "--metric_for_best_model", "eval_macro_f1") == 0
    last = max(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    state = json.loads((last / "trainer_state.json").read_text())
    assert state["best_metric"] == max(e["eval_macro_f1"] for e in state["log_history"] if "eval_macro_f1" in e)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["validation_macro_f1"] == pytest.approx(state["best_metric"])  # the best model was reloaded


@pytest.mark.parametrize("config", sorted(p.name for p in (REPO / "recipes" / "configs" / "classify").glob("*.yaml")))
def test_every_config_parses(config, tmp_path):
    script_args, model_args, training_args = classify.build_parser().parse_recipe_args(
        ["--config", str(REPO / "recipes" / "configs" / "classify" / config), "--output_dir", str(tmp_path)]
    )
    assert script_args.method in classify.METHODS and model_args.model_name_or_path and training_args.max_length > 0


def test_non_empty_output_dir_is_refused(models, tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    assert run_classify("--config", TINY, "--model_name_or_path", models["transformer"], "--output_dir", out) == 2
    assert "is not empty: pass --overwrite_output_dir" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_bad_input_is_one_clear_line(models, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for split, labels in (("train", ["joy", "anger"] * 5), ("test", ["joy", "surprise"])):
        (data / f"{split}.jsonl").write_text("".join(json.dumps({"text": f"t {i}", "label": label}) + "\n"
                                                     for i, label in enumerate(labels)))
    base = ["--model_name_or_path", models["transformer"], "--output_dir", tmp_path / "out"]
    cases = [
        (["--dataset_name", data], r"test split of '.*' has label\(s\) 'surprise' that the train split does not have"),
        (["--load_in_4bit", "true"], "trains only through adapters: add --use_peft true"),
        (["--early_stopping_patience", 2], "early_stopping_patience needs eval_strategy"),
        (["--method", "zero-shot"], "invalid choice: 'zero-shot'"),
        (["--dataset_name", "builtin:nope"], "unknown built-in dataset"),
        (["--bow_vectorizer", "hashing"], "vectorizer='hashing' is not supported: use 'count' or 'tfidf'"),
        (["--method", "generation", "--prompt_template", "Emotion:"], "has no {text} placeholder"),
        (["--model_name_or_path", tmp_path / "no" / "model"], "model folder .* does not exist"),
    ]
    for extra, message in cases:
        assert run_classify(*base, *extra) == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]  # not progress bars
        assert len(errors) == 1 and errors[0].startswith("classify.py: error: "), errors
        assert re.search(message, errors[0]), errors
    assert not (tmp_path / "out").exists()
