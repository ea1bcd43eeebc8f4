"""Tests of `hf_hundredpage.hub`: model cards, the loadable-folder check and publishing, all without network.

The Hub is faked at the `huggingface_hub` boundary: `HfApi.create_repo` / `create_branch` / `create_commit` are
replaced on the class, so `HfApi.upload_folder` runs for real (file listing, ignore patterns, CommitOperationAdd
construction) and we capture exactly what it would have committed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from pathlib import Path
from types import SimpleNamespace

import httpx2
import pytest
import torch
import yaml
from huggingface_hub import CommitInfo, HfApi, ModelCard, ModelCardData, RepoUrl, constants
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    PreTrainedTokenizerFast,
    TrainingArguments,
)

from hf_hundredpage import cli, hub
from hf_hundredpage.hub import cards


WORDS = "once upon a time there was a tiny language model that read the book and learned to write".split()
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }} {{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant{% endif %}"
)
METRICS = {
    "eval_loss": 3.2,
    "eval_perplexity": 24.53,
    "eval_bits_per_byte": 1.234,
    "ngram_eval_perplexity": 80.1,
    "ngram_eval_bits_per_byte": 1.9,
    "eval_runtime": 3.0,  # Trainer bookkeeping: not a model-index metric
    "train_runtime": 4000.5,
}


# ----------------------------------------------------------------------------------------------- fixtures


def make_tokenizer(chat_template: str | None = None) -> PreTrainedTokenizerFast:
    vocab = {token: i for i, token in enumerate(["[UNK]", "[PAD]", "<s>", "</s>", *dict.fromkeys(WORDS)])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", bos_token="<s>", eos_token="</s>"
    )
    if chat_template:
        tokenizer.chat_template = chat_template
    return tokenizer


def tiny_config(**kwargs) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=1,
        bos_token_id=2,
        eos_token_id=3,
        **kwargs,
    )


def save_tiny_llama(folder: Path, *, chat_template: str | None = None, **save_kwargs) -> LlamaForCausalLM:
    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_config())
    model.save_pretrained(folder, **save_kwargs)
    make_tokenizer(chat_template).save_pretrained(folder)
    return model


@pytest.fixture
def llama_folder(tmp_path) -> Path:
    folder = tmp_path / "tiny-llama"
    save_tiny_llama(folder)
    return folder


@pytest.fixture
def trained_folder(llama_folder) -> tuple[Path, set[str]]:
    """A folder as a recipe leaves it: model + tokenizer + card + metrics + plot, and clutter not to upload.

    Returns the folder and the set of files that should be published (what save_pretrained wrote + card etc.).
    """
    saved = {p.relative_to(llama_folder).as_posix() for p in llama_folder.rglob("*") if p.is_file()}
    (llama_folder / "metrics.json").write_text(json.dumps(METRICS))
    (llama_folder / "loss_curve.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    hub.write_model_card(llama_folder, model_name="tiny-llama", metrics=METRICS, hardware="test machine")
    for checkpoint in ("checkpoint-10", "checkpoint-20"):
        (llama_folder / checkpoint).mkdir()
        (llama_folder / checkpoint / "model.safetensors").write_bytes(b"stale")
        (llama_folder / checkpoint / "trainer_state.json").write_text("{}")
    (llama_folder / "runs" / "Nov30").mkdir(parents=True)
    (llama_folder / "runs" / "Nov30" / "events.out.tfevents.1.host").write_bytes(b"tb")
    (llama_folder / "model.safetensors.tmp").write_bytes(b"partial write")
    return llama_folder, saved | {"metrics.json", "loss_curve.png", "README.md"}


class FakeHub:
    """Records what `HfApi` would have sent; installed on the class by the `fake_hub` fixture."""

    def __init__(self):
        self.repos: list[tuple[str, dict]] = []
        self.branches: list[tuple[str, str]] = []
        self.commits: list[dict] = []

    def create_repo(self, api, repo_id, **kwargs):
        self.repos.append((repo_id, kwargs))
        # Like the Hub, put a repo id without namespace under the token's user.
        return RepoUrl(f"https://huggingface.co/{repo_id if '/' in repo_id else 'me/' + repo_id}")

    def create_branch(self, api, repo_id, *, branch, **kwargs):
        self.branches.append((repo_id, branch))

    def create_commit(self, api, repo_id, operations, **kwargs):
        self.commits.append({"repo_id": repo_id, "operations": list(operations), **kwargs})
        oid = "0123456789abcdef" * 2 + "01234567"
        return CommitInfo(
            commit_url=f"https://huggingface.co/{repo_id}/commit/{oid}",
            commit_message=kwargs["commit_message"],
            commit_description="",
            oid=oid,
        )


@pytest.fixture
def fake_hub(monkeypatch) -> FakeHub:
    fake = FakeHub()
    for name in ("create_repo", "create_branch", "create_commit"):
        record = getattr(fake, name)
        monkeypatch.setattr(HfApi, name, lambda api, *args, _record=record, **kwargs: _record(api, *args, **kwargs))
    # With hf_xet installed, upload_folder streams through the xet pipeline instead of one create_commit call;
    # the documented HF_HUB_DISABLE_XET switch selects the single-commit path that we can capture.
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    # upload_folder POSTs README.md to /api/validate-yaml before committing; validate the metadata locally.
    monkeypatch.setattr(HfApi, "_validate_yaml", lambda self, content, **kw: ModelCard(content))
    return fake


def headings(text: str) -> list[str]:
    body = re.sub(r"```.*?```", "", text, flags=re.DOTALL)  # "# comments" in code blocks are not headings
    return re.findall(r"^#{1,6} .*$", body, flags=re.MULTILINE)


def python_block(text: str) -> str:
    return re.search(r"```python\n(.*?)```", text, flags=re.DOTALL).group(1)


def run_snippet(code: str) -> str:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        exec(compile(code, "<model card quick start>", "exec"), {})
    return stdout.getvalue()


# ----------------------------------------------------------------------------------------------- model card


def test_card_metadata_round_trips_through_model_card_load(llama_folder):
    (llama_folder / "loss_curve.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    hub.write_model_card(
        llama_folder,
        model_name="tiny-llama-sft",
        task="sft",
        base_model="someone/tiny-llama",
        datasets=["someone/chat-corpus", str(llama_folder / "local.jsonl")],
        metrics=METRICS,
        command="accelerate launch recipes/sft.py --config recipes/configs/sft/tiny.yaml",
        config={"learning_rate": 3e-4, "output_dir": llama_folder},
        hardware="test machine",
        tags=["tiny", "sft"],
    )
    card = ModelCard.load(llama_folder / "README.md")
    data = card.data.to_dict()
    assert data["license"] == "apache-2.0"
    assert data["library_name"] == "transformers"
    assert data["pipeline_tag"] == "text-generation"
    assert data["base_model"] == "someone/tiny-llama"
    assert data["datasets"] == ["someone/chat-corpus"]  # local files are not Hub datasets
    assert data["tags"] == ["hf-hundredpage", "transformer", "sft", "tiny"]

    (index,) = data["model-index"]
    assert index["name"] == "tiny-llama-sft"
    (result,) = index["results"]
    assert result["task"] == {"type": "text-generation", "name": "Language modeling"}
    assert result["dataset"] == {"name": "chat-corpus", "type": "someone/chat-corpus", "split": "validation"}
    assert {m["type"]: m["value"] for m in result["metrics"]} == {
        "perplexity": 24.53,
        "bits_per_byte": 1.234,
        "loss": 3.2,
        "baseline_perplexity": 80.1,
        "baseline_bits_per_byte": 1.9,
    }
    # What the Hub parses must also pass huggingface_hub's own validation when rebuilt from scratch.
    rebuilt = ModelCardData(**data)
    assert [r.metric_value for r in rebuilt.eval_results] == [24.53, 1.234, 3.2, 80.1, 1.9]

    text = card.text
    assert headings(text) == [
        "# tiny-llama-sft",
        "## Quick start",
        "## Training procedure",
        "## Training data",
        "## Hardware and training time",
        "## Evaluation",
        "## Loss curve",
        "## Limitations and bias",
        "## Citation",
    ]
    assert "| Perplexity (lower is better) | 24.53 | 80.1 |" in text
    assert "| Bits per byte (lower is better) | 1.234 | 1.9 |" in text
    assert "| Cross-entropy loss (lower is better) | 3.2 | – |" in text
    assert "its perplexity is 24.53, against 80.1 for the n-gram (Kneser-Ney) baseline" in text
    assert "![Training and evaluation loss](loss_curve.png)" in text
    assert "accelerate launch recipes/sft.py --config recipes/configs/sft/tiny.yaml" in text
    config_yaml = re.search(r"```yaml\n(.*?)```", text, flags=re.DOTALL).group(1)
    assert yaml.safe_load(config_yaml) == {"learning_rate": 3e-4, "output_dir": str(llama_folder)}
    assert "- Training time: 1 h 06 min" in text  # metrics["train_runtime"] = 4000.5 s
    assert "[`someone/chat-corpus`](https://huggingface.co/datasets/someone/chat-corpus)" in text
    assert (
        "is a decoder-only Transformer language model (book ch. 4) built on "
        "[`someone/tiny-llama`](https://huggingface.co/someone/tiny-llama), fine-tuned on instruction-response pairs"
    ) in text
    assert "author    = {Andriy Burkov}" in text and "publisher = {True Positive Inc.}" in text
    assert "@software{hf_hundredpage," in text
    assert "\n\n\n" not in card.content


def test_optional_sections_disappear_without_their_data(tmp_path):
    folder = tmp_path / "bare"
    folder.mkdir()
    card = hub.write_model_card(folder, model_name="bare-model", hardware="test machine")
    assert headings(card.text) == [
        "# bare-model",
        "## Quick start",
        "## Hardware and training time",
        "## Limitations and bias",
        "## Citation",
    ]
    data = ModelCard.load(folder / "README.md").data.to_dict()
    assert "model-index" not in data and "base_model" not in data and "datasets" not in data
    for absent in ("```bash", "```yaml", "Training time", "baseline", "loss_curve.png", "base model"):
        assert absent not in card.text
    assert "\n\n\n" not in card.content
    assert card.content.startswith("---\n") and card.content.endswith("```\n")


def test_classifier_card_metrics_and_extra_sections(tmp_path):
    folder = tmp_path / "clf"
    folder.mkdir()
    card = hub.write_model_card(
        folder,
        model_name="tiny-classifier",
        task="classify",
        model_family="rnn",
        metrics={"eval_accuracy": 0.875, "eval_macro_f1": 0.8, "test_accuracy": 0.85, "eval_unknown_metric": 1.0},
        extra_sections={"Labels": "0 = negative, 1 = positive"},
        hardware="test machine",
    )
    data = ModelCard.load(folder / "README.md").data.to_dict()
    assert data["pipeline_tag"] == "text-classification"
    results = data["model-index"][0]["results"]
    assert [(r["dataset"]["split"], m["type"], m.get("config"), m["value"]) for r in results for m in r["metrics"]] == [
        ("validation", "accuracy", None, 0.875),
        ("validation", "f1", "macro", 0.8),
        ("test", "accuracy", None, 0.85),
    ]
    assert "AutoModelForSequenceClassification" in card.text and "generate(" not in card.text
    assert "an Elman recurrent neural network language model (book ch. 3)" in card.text
    assert "| Accuracy, test (higher is better) | 0.85 |" in card.text
    assert "baseline" not in card.text.split("## Evaluation")[1].split("##")[0]
    assert headings(card.text)[-3:] == ["## Labels", "## Limitations and bias", "## Citation"]


def test_baseline_metrics_argument_with_or_without_prefix(tmp_path):
    # baseline_metrics as hf_hundredpage.evaluation.evaluate_ngram returns them: bare names mean the eval split.
    card = hub.write_model_card(
        tmp_path,
        model_name="m",
        metrics={"eval_perplexity": 30.0},
        baseline_metrics={"perplexity": 75.5, "n_tokens": 1000, "ngram_test_perplexity": 90.25},
        baseline_name="trigram",
        hardware="x",
    )
    assert "| Perplexity (lower is better) | 30 | 75.5 |" in card.text
    assert "| Perplexity, test (lower is better) | – | 90.25 |" in card.text  # baseline-only row
    results = ModelCard.load(tmp_path / "README.md").data.to_dict()["model-index"][0]["results"]
    assert [(r["dataset"]["split"], m["name"], m["value"]) for r in results for m in r["metrics"]] == [
        ("validation", "Perplexity", 30.0),
        ("validation", "Perplexity, trigram baseline", 75.5),
        ("test", "Perplexity, trigram baseline", 90.25),
    ]


def test_non_numeric_metric_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="eval_perplexity"):
        hub.write_model_card(tmp_path, model_name="m", metrics={"eval_perplexity": "low"}, hardware="x")


def test_quick_start_snippet_runs_on_the_saved_folder(llama_folder):
    card = hub.write_model_card(llama_folder, model_name="tiny-llama", repo_id=str(llama_folder), hardware="x")
    code = python_block(card.text)
    assert "trust_remote_code" not in code  # a stock Llama config has no auto_map
    output = run_snippet(code)
    assert output.startswith("once upon a time")


def test_quick_start_uses_the_chat_template_when_the_tokenizer_has_one(tmp_path):
    folder = tmp_path / "chat"
    save_tiny_llama(folder, chat_template=CHAT_TEMPLATE)
    card = hub.write_model_card(folder, model_name="chat", task="sft", repo_id=str(folder), hardware="x")
    code = python_block(card.text)
    assert "apply_chat_template" in code
    run_snippet(code)  # generation of random weights: that it runs end to end is the point


def test_classifier_quick_start_runs(tmp_path):
    folder = tmp_path / "clf"
    LlamaForSequenceClassification(tiny_config(num_labels=2, id2label={0: "negative", 1: "positive"})).save_pretrained(
        folder
    )
    make_tokenizer().save_pretrained(folder)
    card = hub.write_model_card(folder, model_name="clf", task="classify", repo_id=str(folder), hardware="x")
    probabilities = eval(run_snippet(python_block(card.text)))  # the snippet prints {label: probability}
    assert set(probabilities) == {"negative", "positive"}
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=2e-3)  # rounded to 3 decimals


@pytest.mark.parametrize("task", ["pretrain", "convert"])
@pytest.mark.parametrize("family", ["transformer", "rnn"])
def test_pretrained_card_continues_text_even_with_a_chat_template(tmp_path, task, family):
    # The book's tokenizer ships a chat template; a base model never trained on it must not be prompted with it.
    folder = tmp_path / "base"
    save_tiny_llama(folder, chat_template=CHAT_TEMPLATE)
    card = hub.write_model_card(folder, model_name="base", task=task, model_family=family, repo_id=str(folder), hardware="x")
    code = python_block(card.text)
    assert "apply_chat_template" not in code and "What is a language model?" not in code
    assert 'tokenizer("Once upon a time", return_tensors="pt")' in code and "model.generate(**inputs" in code
    assert run_snippet(code).startswith("once upon a time")


@pytest.mark.parametrize("task", ["sft", "lora", "qlora", "merge-adapter", "some-new-recipe"])
def test_chat_tasks_use_the_chat_template_and_fall_back_to_text_without_one(tmp_path, task):
    chat = tmp_path / "chat"
    save_tiny_llama(chat, chat_template=CHAT_TEMPLATE)
    code = python_block(hub.write_model_card(chat, model_name="m", task=task, hardware="x").text)
    assert "apply_chat_template" in code and '"What is a language model?"' in code
    plain = tmp_path / "plain"
    save_tiny_llama(plain)
    code = python_block(hub.write_model_card(plain, model_name="m", task=task, hardware="x").text)
    assert "apply_chat_template" not in code and '"Once upon a time"' in code


def test_label_generation_classifier_card_fills_its_prompt_template(tmp_path):
    folder = tmp_path / "clf-gen"
    save_tiny_llama(folder, chat_template=CHAT_TEMPLATE)
    template = 'Predict the emotion of the "text".\nText: {text}\nEmotion:'
    card = hub.write_model_card(
        folder, model_name="clf-gen", task="classify", pipeline_tag="text-generation", prompt_template=template,
        repo_id=str(folder), hardware="x",
    )
    assert ModelCard.load(folder / "README.md").data.pipeline_tag == "text-generation"
    code = python_block(card.text)
    assert "apply_chat_template" not in code and "AutoModelForSequenceClassification" not in code
    assert "do_sample=False" in code and "max_new_tokens=8" in code
    assert f"```text\n{template}\n```" in card.text  # the template itself, verbatim, under the snippet
    namespace = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, "<model card quick start>", "exec"), namespace)
    assert namespace["prompt"] == template.replace("{text}", "i feel so happy about the trip")
    assert namespace["outputs"].shape[1] - namespace["inputs"]["input_ids"].shape[1] <= 8
    assert "Its predictions are only meaningful" in card.text
    with pytest.raises(ValueError, match="placeholder"):
        hub.write_model_card(folder, model_name="m", task="classify", pipeline_tag="text-generation",
                             prompt_template="no slot", hardware="x")


def test_snippet_loads_the_repo_id_else_the_folder_as_given(tmp_path, monkeypatch):
    folder = tmp_path / "sub" / "m"
    save_tiny_llama(folder)
    code = python_block(hub.write_model_card(folder, model_name="m", hardware="x").text)
    assert f'from_pretrained("{folder}")' in code and 'from_pretrained("m")' not in code
    run_snippet(code)  # loads from any working directory

    code = python_block(hub.write_model_card(folder, model_name="m", repo_id="someone/m", hardware="x").text)
    assert 'from_pretrained("someone/m")' in code and str(folder) not in code

    # A relative folder stays relative: the card records no absolute path the caller did not give.
    monkeypatch.chdir(tmp_path)
    card = hub.write_model_card(Path("sub") / "m", model_name="m", base_model="../base", hardware="x")
    assert str(tmp_path) not in card.content
    assert 'from_pretrained("sub/m")' in python_block(card.text) and "built on `../base`" in card.text
    run_snippet(python_block(card.text))


def test_resumed_run_says_so_in_the_training_section(tmp_path):
    card = hub.write_model_card(tmp_path, model_name="m", command="python recipes/pretrain.py", train_runtime=125,
                                resumed=True, hardware="x")
    training = card.text.split("## Training procedure")[1].split("\n## ")[0]
    assert "resumed from a checkpoint" in training and "whole run" in training
    assert "- Training time: 2 min 05 s (whole run, resumed from a checkpoint)" in card.text
    # The section shows even without command or config; a run that was not resumed says nothing of it.
    assert "## Training procedure" in hub.write_model_card(tmp_path, model_name="m", resumed=True, hardware="x").text
    fresh = hub.write_model_card(tmp_path, model_name="m", command="python recipes/pretrain.py", train_runtime=125,
                                 hardware="x")
    assert "resumed from a checkpoint" not in fresh.text and "whole run" not in fresh.text


def test_adapter_folder_card_and_quick_start(llama_folder, tmp_path):
    peft = pytest.importorskip("peft")
    base = LlamaForCausalLM.from_pretrained(llama_folder)
    adapter = tmp_path / "adapter"
    peft.get_peft_model(base, peft.LoraConfig(r=2, target_modules=["q_proj", "v_proj"])).save_pretrained(adapter)
    make_tokenizer().save_pretrained(adapter)
    assert "adapter_config.json" in hub.check_loadable_folder(adapter)

    card = hub.write_model_card(
        adapter, model_name="lora", task="lora", base_model=str(llama_folder), repo_id=str(adapter), hardware="x"
    )
    data = ModelCard.load(adapter / "README.md").data.to_dict()
    assert data["library_name"] == "peft"
    assert "base_model" not in data  # a local path is not a Hub id the metadata may name
    assert f"built on `{llama_folder}`, fine-tuned with low-rank adapters" in card.text
    # The parameter count comes from the safetensors header: compare with PEFT's own count.
    loaded = peft.PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(llama_folder), adapter)
    trainable = sum(p.numel() for name, p in loaded.named_parameters() if "lora_" in name)
    assert cards._count_parameters(adapter) == trainable
    assert f"It has {trainable} adapter parameters." in card.text
    assert run_snippet(python_block(card.text)).startswith("once upon a time")


def test_parameter_count_matches_the_model(tmp_path):
    model = save_tiny_llama(tmp_path / "sharded", max_shard_size="8KB")
    assert len(list((tmp_path / "sharded").glob("model-*.safetensors"))) > 1
    assert cards._count_parameters(tmp_path / "sharded") == sum(p.numel() for p in model.parameters())


def test_hardware_detection(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert hub.detect_hardware().startswith("CPU only: ")
    assert hub.detect_hardware().endswith(f"({os.cpu_count()} logical cores)")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    assert hub.detect_hardware().startswith("2 × NVIDIA H100 80GB HBM3 (CUDA 12.8); CPU: ")


@pytest.mark.parametrize(
    "seconds, expected", [(42.34, "42.3 s"), (125, "2 min 05 s"), (3600, "1 h 00 min"), (4000.5, "1 h 06 min")]
)
def test_format_duration(seconds, expected):
    assert cards._format_duration(seconds) == expected


# ----------------------------------------------------------------------------------------------- loadable folder


def test_check_loadable_folder_lists_exactly_the_files_to_upload(trained_folder):
    folder, expected = trained_folder
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= expected
    assert set(hub.check_loadable_folder(folder)) == expected


@pytest.mark.parametrize(
    "remove, named",
    [
        ("config.json", "config.json"),
        ("model.safetensors", "model.safetensors"),
        (("tokenizer.json", "tokenizer_config.json"), "tokenizer.json or tokenizer_config.json"),
    ],
)
def test_check_loadable_folder_names_what_is_missing(llama_folder, remove, named):
    for name in [remove] if isinstance(remove, str) else remove:
        (llama_folder / name).unlink()
    with pytest.raises(ValueError, match=re.escape(named)) as error:
        hub.check_loadable_folder(llama_folder)
    assert "\n" not in str(error.value)


def test_check_loadable_folder_sharded_weights(tmp_path):
    folder = tmp_path / "sharded"
    save_tiny_llama(folder, max_shard_size="8KB")
    files = hub.check_loadable_folder(folder)
    shards = sorted(p.name for p in folder.glob("model-*.safetensors"))
    assert "model.safetensors.index.json" in files and set(shards) <= set(files)
    (folder / shards[-1]).unlink()
    with pytest.raises(ValueError, match=re.escape(shards[-1])):
        hub.check_loadable_folder(folder)


def test_check_loadable_folder_follows_auto_map_code_and_its_imports(llama_folder):
    config = json.loads((llama_folder / "config.json").read_text())
    config["auto_map"] = {
        "AutoConfig": "configuration_tiny.TinyConfig",
        "AutoModelForCausalLM": "modeling_tiny.TinyForCausalLM",
        "AutoModel": "someone/other-repo--modeling_other.OtherModel",  # code in another repo: not checked
    }
    (llama_folder / "config.json").write_text(json.dumps(config))
    (llama_folder / "configuration_tiny.py").write_text("class TinyConfig: ...\n")
    (llama_folder / "modeling_tiny.py").write_text(
        "from .configuration_tiny import TinyConfig\nfrom .rope_tiny import rotate\n\nclass TinyForCausalLM: ...\n"
    )
    with pytest.raises(ValueError, match=r"lacks: rope_tiny\.py\."):
        hub.check_loadable_folder(llama_folder)
    (llama_folder / "rope_tiny.py").write_text("def rotate(x): return x\n")
    assert {"configuration_tiny.py", "modeling_tiny.py", "rope_tiny.py"} <= set(hub.check_loadable_folder(llama_folder))
    (llama_folder / "configuration_tiny.py").unlink()
    with pytest.raises(ValueError, match=r"configuration_tiny\.py"):
        hub.check_loadable_folder(llama_folder)


def test_check_loadable_folder_adapter_needs_its_weights(tmp_path):
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": "x/y"}))
    make_tokenizer().save_pretrained(folder)
    with pytest.raises(ValueError, match="adapter_model.safetensors") as error:
        hub.check_loadable_folder(folder)
    assert "config.json," not in str(error.value)  # an adapter folder needs no config.json


def test_check_loadable_folder_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        hub.check_loadable_folder(tmp_path / "nope")


# ----------------------------------------------------------------------------------------------- publishing


def test_publish_uploads_exactly_the_loadable_files(trained_folder, fake_hub):
    folder, expected = trained_folder
    url = hub.publish(folder, "someone/tiny-llama", private=True)

    assert fake_hub.repos == [("someone/tiny-llama", {"private": True, "exist_ok": True})]
    (commit,) = fake_hub.commits
    assert url == commit_url_of(fake_hub)
    assert commit["repo_id"] == "someone/tiny-llama"
    assert commit["commit_message"] == "Upload tiny-llama with hf_hundredpage"
    assert commit["revision"] is None and not commit["create_pr"]
    operations = commit["operations"]
    assert sorted(op.path_in_repo for op in operations) == sorted(expected)
    for op in operations:
        assert Path(op.path_or_fileobj) == (folder / op.path_in_repo).resolve()
    assert not any(op.path_in_repo.startswith(("checkpoint-", "runs/")) for op in operations)


def commit_url_of(fake: FakeHub) -> str:
    return f"https://huggingface.co/{fake.commits[-1]['repo_id']}/commit/" + "0123456789abcdef" * 2 + "01234567"


def test_publish_to_a_branch_and_as_pull_request(trained_folder, fake_hub):
    folder, _ = trained_folder
    hub.publish(folder, "someone/tiny-llama", revision="experiment", commit_message="try")
    assert fake_hub.branches == [("someone/tiny-llama", "experiment")]
    assert fake_hub.commits[-1]["revision"] == "experiment" and fake_hub.commits[-1]["commit_message"] == "try"

    hub.publish(folder, "someone/tiny-llama", create_pr=True)
    assert fake_hub.commits[-1]["create_pr"] is True and fake_hub.branches == [("someone/tiny-llama", "experiment")]
    with pytest.raises(ValueError, match="drop revision or create_pr"):
        hub.publish(folder, "someone/tiny-llama", create_pr=True, revision="experiment")


def test_publish_refuses_a_broken_folder_before_touching_the_hub(llama_folder, fake_hub):
    (llama_folder / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="model.safetensors"):
        hub.publish(llama_folder, "someone/tiny-llama")
    with pytest.raises(ValueError):
        hub.publish(llama_folder.parent, "not a valid/repo id!")
    assert fake_hub.repos == [] and fake_hub.commits == []


@pytest.mark.parametrize(
    "error",
    [
        # What huggingface_hub 2.4 raises when the Hub host cannot be resolved (it speaks HTTP through httpx2).
        httpx2.ConnectError("[Errno -2] Name or service not known"),
        httpx2.ConnectTimeout("timed out"),
        OfflineModeIsEnabled("Cannot reach https://huggingface.co/api/repos/create: offline mode is enabled."),
    ],
    ids=["connect-error", "timeout", "offline-mode"],
)
def test_unreachable_hub_raises_one_clear_error(llama_folder, fake_hub, monkeypatch, error):
    def create_repo(self, repo_id, **kwargs):
        raise error

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    with pytest.raises(hub.HubConnectionError, match="nothing was uploaded") as raised:
        hub.publish(llama_folder, "someone/tiny-llama")
    message = str(raised.value)
    assert "HF_TOKEN" in message and "cannot reach the Hugging Face Hub" in message and "\n" not in message
    assert isinstance(raised.value, OSError)  # so the CLI prints it on one line
    assert raised.value.__cause__ is error
    assert fake_hub.commits == []


def test_connection_lost_during_upload(llama_folder, fake_hub, monkeypatch):
    def create_commit(self, repo_id, operations, **kwargs):
        raise httpx2.ReadError("connection reset by peer")

    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    with pytest.raises(hub.HubConnectionError, match="did not complete; run it again"):
        hub.publish(llama_folder, "someone/tiny-llama")


def test_auth_error_says_to_set_a_write_token(llama_folder, fake_hub, monkeypatch):
    response = httpx2.Response(403, request=httpx2.Request("POST", "https://huggingface.co/api/repos/create"))

    def create_repo(self, repo_id, **kwargs):
        raise HfHubHTTPError("403 Forbidden", response=response)

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    with pytest.raises(PermissionError, match="HF_TOKEN"):
        hub.publish(llama_folder, "someone/tiny-llama")


def test_cli_publish(trained_folder, fake_hub, capsys):
    folder, expected = trained_folder
    argv = ["publish", str(folder), "someone/tiny-llama", "--private", "--commit_message", "first", "--token", "hf_x"]
    assert cli.main(argv) == 0
    assert fake_hub.repos[0][1]["private"] is True and fake_hub.commits[0]["commit_message"] == "first"
    assert len(fake_hub.commits[0]["operations"]) == len(expected)
    assert commit_url_of(fake_hub) in capsys.readouterr().out


def test_cli_publish_unreachable_hub_prints_one_line(llama_folder, fake_hub, monkeypatch, capsys):
    def create_repo(self, repo_id, **kwargs):
        raise httpx2.ConnectError("[Errno -2] Name or service not known")

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    assert cli.main(["publish", str(llama_folder), "someone/tiny-llama"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("hf-hundredpage publish: error: cannot reach the Hugging Face Hub")


def test_maybe_push_to_hub(trained_folder, fake_hub, tmp_path):
    folder, _ = trained_folder
    assert hub.maybe_push_to_hub(folder, SimpleNamespace(push_to_hub=False)) is None
    assert fake_hub.repos == []

    args = TrainingArguments(
        output_dir=str(tmp_path / "unused"), push_to_hub=True, hub_private_repo=True, use_cpu=True, report_to="none"
    )
    url = hub.maybe_push_to_hub(folder, args)
    assert fake_hub.repos == [("tiny-llama", {"private": True, "exist_ok": True})]  # no hub_model_id: folder name
    assert fake_hub.commits[-1]["repo_id"] == "me/tiny-llama"  # uploaded where create_repo put it
    assert url == commit_url_of(fake_hub)

    args.hub_model_id, args.hub_revision = "someone/renamed", "v1"
    hub.maybe_push_to_hub(folder, args)
    assert fake_hub.repos[-1][0] == "someone/renamed" and fake_hub.commits[-1]["revision"] == "v1"


def test_wheel_installs_the_model_card_template():
    """model_cards/ is top-level (the product layout), so a wheel ships it as data files where hub/cards.py looks."""
    import fnmatch

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    repo = Path(__file__).resolve().parents[1]
    data_files = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    patterns = data_files["share/hf_hundredpage/model_cards"]
    assert any(fnmatch.fnmatch("model_cards/model_card_template.md", pattern) for pattern in patterns)
    assert hub.MODEL_CARD_TEMPLATE.is_file()
