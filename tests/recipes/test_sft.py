"""recipes/sft.py end to end on a tiny model built here: the output contract, learning (eval loss, exact match of
greedy answers), generation stopping at the chat template's end-of-turn token, LoRA adapters that point at their
base and merge exactly, QLoRA on a CPU, and bad input."""

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AddedToken, AutoModelForCausalLM, AutoTokenizer

from hf_hundredpage import HundredPageTransformerConfig, HundredPageTransformerForCausalLM
from hf_hundredpage.cli import main as cli
from hf_hundredpage.data.builtin.instructions import make_instruction_dataset, save_instruction_dataset
from hf_hundredpage.finetuning import HundredPageModelConfig
from hf_hundredpage.tokenization import train_bpe_tokenizer

from .helpers import REPO, load_recipe


sft = load_recipe("sft")
CONFIGS = REPO / "recipes" / "configs" / "sft"
IM_END = "<|im_end|>"
# ChatML with a dedicated end-of-turn token that is NOT the tokenizer's EOS (Qwen / Llama-3 style): the case where
# a model whose generation config only knows its EOS never stops generating after SFT.
CHATML = (
    "{%- for message in messages -%}{{- '<|im_start|>' + message['role'] + '\n' -}}"
    "{%- if message['role'] == 'assistant' -%}{%- generation -%}{{- message['content'] + '<|im_end|>' -}}"
    "{%- endgeneration -%}{%- else -%}{{- message['content'] + '<|im_end|>' -}}{%- endif -%}{{- '\n' -}}"
    "{%- endfor -%}{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}"
)
EASY_TASKS = ["next_day", "next_month"]  # closed families: a from-scratch model learns them in ~100 steps
CONTRACT = {
    "config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
    "metrics.json", "predictions.json", "loss_curve.png", "README.md",
}


pytestmark = pytest.mark.usefixtures("one_thread")


def build_chat_model(folder: Path, hidden_size: int = 64, **moe) -> Path:
    """A from-scratch 2-layer transformer with a 400-token BPE fitted to the instruction data and a ChatML template
    (`moe`: mixture-of-experts fields of the config, book §6.1)."""
    data = make_instruction_dataset(600, seed=7)
    texts = [f"user\n{m[0]['content']}\nassistant\n{m[1]['content']}\nAnswer:" for m in data["train"]["messages"]]
    tokenizer = train_bpe_tokenizer(texts, vocab_size=400)
    tokenizer.add_tokens([AddedToken(IM_END, special=True)], special_tokens=True)
    tokenizer.chat_template = CHATML
    config = HundredPageTransformerConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, **moe,
    )
    torch.manual_seed(0)
    HundredPageTransformerForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_chat_model(tmp_path_factory.mktemp("tiny_chat_model"))


def run_sft(*args) -> int:
    return sft.main(["--disable_tqdm", "true", "--report_to", "none", *map(str, args)])


@pytest.fixture(scope="module")
def full_run(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("sft") / "full"
    code = run_sft(
        "--config", CONFIGS / "instructions_tiny.yaml", "--model_name_or_path", tiny_model, "--output_dir", out,
        "--dataset_num_examples", 200, "--dataset_tasks", *EASY_TASKS, "--max_steps", 30, "--learning_rate", 1e-2,
        "--warmup_steps", 0, "--eval_steps", 15, "--save_steps", 15,
    )
    assert code == 0
    return out


def test_full_sft_writes_the_contract(full_run, tiny_model):
    assert CONTRACT <= {p.name for p in full_run.iterdir()}
    metrics = json.loads((full_run / "metrics.json").read_text())
    assert {"eval_loss", "base_eval_loss", "eval_exact_match", "base_eval_exact_match", "eval_exact_match_next_day",
            "train_runtime", "train_steps"} <= set(metrics)
    assert metrics["train_steps"] == 30 and metrics["eval_num_examples"] == 20
    assert metrics["num_trainable_parameters"] == metrics["num_parameters"]  # full finetuning
    predictions = json.loads((full_run / "predictions.json").read_text())["test"]
    assert len(predictions) == 20 and all(p["prompt"].endswith("<|im_start|>assistant\n") for p in predictions)
    assert metrics["eval_exact_match"] == sum(p["correct"] for p in predictions) / 20

    tokenizer = AutoTokenizer.from_pretrained(full_run)
    assert tokenizer.chat_template == CHATML
    card = ModelCard.load(full_run / "README.md")
    values = {(m["type"], r["dataset"]["split"]): m["value"]
              for r in card.data.to_dict()["model-index"][0]["results"] for m in r["metrics"]}
    assert values[("exact_match", "test")] == pytest.approx(metrics["eval_exact_match"])
    assert values[("baseline_exact_match", "test")] == pytest.approx(metrics["base_eval_exact_match"])
    assert values[("loss", "validation")] == pytest.approx(metrics["eval_loss"], rel=1e-3)


def test_full_sft_lowers_the_eval_loss(full_run):
    metrics = json.loads((full_run / "metrics.json").read_text())
    # An untrained model never produces a right answer; 30 steps cut the loss on the answers by several nats
    # (measured: 5.99 -> 2.93).
    assert metrics["base_eval_exact_match"] == 0.0
    assert metrics["base_eval_loss"] > 5.5
    assert metrics["eval_loss"] < metrics["base_eval_loss"] - 2.5


def test_generation_stops_at_the_template_end_of_turn(full_run, tiny_model):
    tokenizer = AutoTokenizer.from_pretrained(full_run)
    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    # The base only knew its EOS; the SFT model also stops on the token that ends an assistant turn.
    assert AutoModelForCausalLM.from_pretrained(tiny_model).generation_config.eos_token_id == tokenizer.eos_token_id
    generation = json.loads((full_run / "generation_config.json").read_text())
    assert generation["eos_token_id"] == [im_end, tokenizer.eos_token_id]
    assert generation["pad_token_id"] == tokenizer.pad_token_id
    assert json.loads((full_run / "metrics.json").read_text())["eval_stopped_at_eos"] == 1.0

    model = AutoModelForCausalLM.from_pretrained(full_run).eval()
    prompt = json.loads((full_run / "predictions.json").read_text())["test"][0]["prompt"]
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=12, do_sample=False)  # nothing but the saved generation config
    new = out[0, ids.shape[1]:].tolist()
    assert len(new) < 12 and new[-1] == im_end and im_end not in new[:-1]


def test_sft_learns_the_instructions(tiny_model, tmp_path):
    """From no right answer to nearly all: 150 steps on the two closed families (~4 s on 2 cores)."""
    out = tmp_path / "learned"
    assert run_sft(
        "--config", CONFIGS / "instructions_tiny.yaml", "--model_name_or_path", tiny_model, "--output_dir", out,
        "--dataset_num_examples", 300, "--dataset_tasks", *EASY_TASKS, "--max_steps", 150, "--learning_rate", 1e-2,
        "--eval_strategy", "no", "--save_strategy", "no",
    ) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    # Measured: 0.0 before; 1.0 after (next_day 1.0, next_month 1.0) on 30 test questions.
    assert metrics["base_eval_exact_match"] == 0.0
    assert metrics["eval_exact_match_next_day"] >= 0.6 and metrics["eval_exact_match_next_month"] >= 0.6
    assert metrics["eval_exact_match"] >= 0.8

    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    learned = next(p for p in json.loads((out / "predictions.json").read_text())["test"] if p["correct"])
    ids = tokenizer(learned["prompt"], return_tensors="pt").input_ids
    new = model.generate(ids, max_new_tokens=20, do_sample=False)[0, ids.shape[1]:]
    assert new[-1] == tokenizer.convert_tokens_to_ids(IM_END) and len(new) < 20
    assert tokenizer.decode(new, skip_special_tokens=True) == learned["reference"]


@pytest.mark.slow
def test_sft_generalises_to_unseen_instructions(tmp_path):
    """All seven families, 2000 steps of a 128-wide model (~60 s): the list tasks are scored on lists never seen in
    training. Measured: 0.0 before, 0.655 after (copy 0.41, uppercase 0.38, reverse 0.45, sort 0.66, add 0.71,
    next_day / next_month 1.0) on 200 test questions."""
    model = build_chat_model(tmp_path / "model", hidden_size=128)
    out = tmp_path / "all"
    assert run_sft(
        "--config", CONFIGS / "instructions_tiny.yaml", "--model_name_or_path", model, "--output_dir", out,
        "--dataset_num_examples", 2000, "--max_steps", 2000, "--eval_strategy", "no", "--save_strategy", "no",
    ) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["base_eval_exact_match"] == 0.0 and metrics["eval_exact_match"] >= 0.5
    assert all(metrics[f"eval_exact_match_{task}"] >= 0.2 for task in ("copy", "uppercase", "reverse", "sort"))


def test_early_stopping_stops_when_eval_loss_stalls(tiny_model, tmp_path):
    out = tmp_path / "stalled"
    assert run_sft(
        "--config", CONFIGS / "instructions_tiny.yaml", "--model_name_or_path", tiny_model, "--output_dir", out,
        "--dataset_num_examples", 60, "--max_steps", 20, "--learning_rate", 0.0, "--eval_steps", 2, "--save_steps", 2,
        "--early_stopping_patience", 1, "--eval_max_examples", 2, "--eval_max_new_tokens", 2,
    ) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_steps"] == 4  # best at step 2, no improvement at step 4 with patience 1
    assert metrics["eval_loss"] == pytest.approx(metrics["base_eval_loss"])


def test_lora_on_local_packed_prompt_completion_data_merges_exactly(tiny_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tiny_model.parent)  # the base is given as a relative path ...
    data = tmp_path / "data"
    save_instruction_dataset(data, n=120, seed=3, format="prompt-completion", tasks=EASY_TASKS)
    out = tmp_path / "lora"
    assert run_sft(
        "--model_name_or_path", tiny_model.name, "--dataset_name", data, "--output_dir", out, "--use_peft", "true",
        "--lora_r", 8, "--lora_dropout", 0.0, "--max_steps", 8, "--learning_rate", 1e-2, "--per_device_train_batch_size", 8,
        "--logging_steps", 2, "--save_strategy", "no", "--eval_max_new_tokens", 6, "--packing", "true", "--max_length", 64,
    ) == 0
    files = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "generation_config.json", "metrics.json", "README.md"} <= files
    assert "model.safetensors" not in files
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(tiny_model.resolve())  # ... and recorded absolute
    assert adapter_config["task_type"] == "CAUSAL_LM"
    assert set(adapter_config["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 < metrics["num_trainable_parameters"] < metrics["num_parameters"] / 5
    assert metrics["eval_loss"] < metrics["base_eval_loss"]
    assert all(key.startswith("base_model.") and "lora_" in key for key in load_file(out / "adapter_model.safetensors"))

    merged_dir = tmp_path / "merged"
    assert cli(["merge-adapter", str(out), str(merged_dir)]) == 0
    base = AutoModelForCausalLM.from_pretrained(tiny_model.resolve())
    adapted = PeftModel.from_pretrained(base, out).eval()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    ids = AutoTokenizer.from_pretrained(out)(["What comes after May?\nAnswer:"], return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, adapted(ids).logits, rtol=0, atol=1e-4)
    assert merged.generation_config.eos_token_id == json.loads((out / "generation_config.json").read_text())["eos_token_id"]


def test_qlora_recipe_runs_on_cpu(tiny_model, tmp_path):
    out = tmp_path / "qlora"
    assert run_sft(
        "--config", CONFIGS / "qlora_tiny.yaml", "--model_name_or_path", tiny_model, "--output_dir", out,
        "--dataset_num_examples", 60, "--dataset_tasks", *EASY_TASKS, "--max_steps", 4, "--learning_rate", 2e-2,
        "--eval_strategy", "no", "--save_strategy", "no", "--eval_max_new_tokens", 4,
    ) == 0
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(tiny_model.resolve())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval_loss"] < metrics["base_eval_loss"] and metrics["train_steps"] == 4
    card = (out / "README.md").read_text()
    assert "qlora" in card and "peft" in card


def test_every_config_parses():
    for path in sorted(CONFIGS.glob("*.yaml")):
        script_args, model_args, training_args = sft.build_parser().parse_recipe_args(
            ["--config", str(path), "--model_name_or_path", "m", "--output_dir", "unused"]
        )
        assert isinstance(model_args, HundredPageModelConfig) and training_args.max_length
        if training_args.chat_template_path:
            assert (REPO / training_args.chat_template_path).is_file(), path
    gpt2 = sft.build_parser().parse_recipe_args(["--config", str(CONFIGS / "gpt2_instruct.yaml"), "--output_dir", "x"])
    assert gpt2[1].model_name_or_path == "openai-community/gpt2"


def test_refuses_a_non_empty_output_dir(tiny_model, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    assert run_sft("--model_name_or_path", tiny_model, "--output_dir", out) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sft.py: error: output_dir") and "--overwrite_output_dir" in err and "\n" not in err
    assert (out / "keep.txt").read_text() == "precious"


@pytest.mark.parametrize(
    "yaml_text,message",
    [
        ("learning_rat: 0.1\n", "unknown key 'learning_rat'"),
        ("dtype: float8\n", "dtype must be one of"),
        ("early_stopping_patience: 2\neval_strategy: 'no'\n", "early_stopping_patience needs eval_strategy"),
        ("load_in_4bit: true\nload_in_8bit: true\n", "exclusive"),
    ],
)
def test_bad_config_exits_2_with_one_line(tmp_path, capsys, yaml_text, message):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml_text)
    assert run_sft("--config", config, "--model_name_or_path", "m", "--output_dir", tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sft.py: error:") and message in err and "\n" not in err


def test_missing_model_folder_exits_2(tmp_path, capsys):
    assert run_sft("--model_name_or_path", "./no/such/model", "--output_dir", tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    assert "model folder ./no/such/model does not exist" in err and "\n" not in err


def test_sft_of_a_mixture_of_experts_adds_trls_load_balancing_loss(tmp_path):
    """TRL's SFTTrainer reads `router_aux_loss_coef` / `num_experts` from the config and adds Mixtral's load-balancing
    loss; a dense config has no router, so its coefficient is 0 and TRL leaves it alone (the other SFT tests)."""
    model = build_chat_model(tmp_path / "moe", num_local_experts=4, num_experts_per_tok=2, router_aux_loss_coef=0.02)
    out = tmp_path / "sft"
    assert run_sft("--config", CONFIGS / "instructions_tiny.yaml", "--model_name_or_path", model, "--output_dir", out,
                   "--dataset_num_examples", 64, "--max_steps", 3, "--eval_strategy", "no", "--save_strategy", "no",
                   "--eval_max_examples", 4, "--eval_max_new_tokens", 4) == 0
    saved = json.loads((out / "config.json").read_text())
    # TRL turned the router logits on because the coefficient is non-zero, and trained through its aux-loss path.
    assert saved["num_local_experts"] == 4 and saved["output_router_logits"] is True
    assert saved["router_aux_loss_coef"] == 0.02
