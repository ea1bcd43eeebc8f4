"""recipes/distill.py end to end (book §6.3): a 2-layer, 64-wide transformer teacher trained here on the embedded
corpus with a 512-token BPE tokenizer, distilled into a fresh 1-layer, 32-wide student; the output contract and card;
the no-KD comparison; bad input is one line and writes nothing."""

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

from hf_hundredpage import HundredPageTransformerConfig, HundredPageTransformerForCausalLM
from hf_hundredpage.data import load_text_dataset, pack_dataset
from hf_hundredpage.tokenization import train_bpe_tokenizer

from .helpers import REPO, load_recipe


distill = load_recipe("distill")
CONFIG = REPO / "recipes" / "configs" / "distill" / "quickstart_tiny.yaml"
QUIET = ["--disable_tqdm", "true", "--report_to", "none"]

pytestmark = pytest.mark.usefixtures("one_thread")


def transformer(tokenizer, hidden_size: int, num_hidden_layers: int, num_attention_heads: int):
    torch.manual_seed(0)
    return HundredPageTransformerForCausalLM(HundredPageTransformerConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id))


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    """200 AdamW steps on 16 blocks of 64 tokens (~6 s)."""
    texts = load_text_dataset()["train"]["text"]
    tokenizer = train_bpe_tokenizer(texts, vocab_size=512)
    blocks = pack_dataset(load_text_dataset()["train"], tokenizer, 64).with_format("numpy")["input_ids"][:]
    blocks = torch.tensor(blocks).long()
    model = transformer(tokenizer, 64, 2, 4)
    optimizer, generator = torch.optim.AdamW(model.parameters(), lr=3e-3), torch.Generator().manual_seed(0)
    for _ in range(200):
        batch = blocks[torch.randint(len(blocks), (16,), generator=generator)]
        model(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    folder = tmp_path_factory.mktemp("distill") / "teacher"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def student_config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("distill") / "student.yaml"
    path.write_text("model_type: transformer\nhidden_size: 32\nnum_hidden_layers: 1\nnum_attention_heads: 2\n")
    return path


@pytest.fixture(scope="module")
def distilled(teacher, student_config, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("distill") / "out"
    assert distill.main([*QUIET, "--config", str(CONFIG), "--teacher_model_name_or_path", str(teacher),
                         "--student_config", str(student_config), "--output_dir", str(out),
                         "--compare_no_kd", "true"]) == 0
    return out


def test_distillation_improves_the_student_and_reports_teacher_and_no_kd(distilled):
    metrics = json.loads((distilled / "metrics.json").read_text())
    # Measured (100 validation documents, 60 steps): teacher 2.93, student before 4.41, data alone 3.75, distilled 3.73
    assert metrics["eval_bits_per_byte"] < metrics["student_before_eval_bits_per_byte"] - 0.3
    assert metrics["teacher_eval_bits_per_byte"] < metrics["eval_bits_per_byte"]
    assert abs(metrics["no_kd_eval_bits_per_byte"] - metrics["eval_bits_per_byte"]) < 0.3
    assert metrics["no_kd_eval_bits_per_byte"] < metrics["student_before_eval_bits_per_byte"]
    assert metrics["train_steps"] == 60 and metrics["eval_num_documents"] == 100
    assert metrics["num_parameters"] < metrics["teacher_num_parameters"] / 2


def test_distill_writes_the_contract_and_card(distilled, teacher):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    names = {p.name for p in distilled.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "metrics.json", "loss_curve.png",
            "README.md"} <= names
    model = AutoModelForCausalLM.from_pretrained(distilled)
    assert (model.config.hidden_size, model.config.num_hidden_layers) == (32, 1)
    assert AutoTokenizer.from_pretrained(distilled).get_vocab() == AutoTokenizer.from_pretrained(teacher).get_vocab()
    metrics = json.loads((distilled / "metrics.json").read_text())
    card = ModelCard.load(distilled / "README.md")
    values = {m["type"]: m["value"] for r in card.data.to_dict()["model-index"][0]["results"] for m in r["metrics"]}
    assert values["bits_per_byte"] == pytest.approx(metrics["eval_bits_per_byte"])
    assert values["baseline_bits_per_byte"] == pytest.approx(metrics["no_kd_eval_bits_per_byte"])
    assert "§6.3" in card.text and "same student without the teacher" in card.text


def bad_run(capsys, out: Path, *args) -> list[str]:
    capsys.readouterr()
    code = distill.main([*QUIET, "--config", str(CONFIG), "--output_dir", str(out), *map(str, args)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("distill.py: error: ")
    assert not out.exists()
    return err[0]


def test_a_student_with_another_tokenizer_is_one_line_and_writes_nothing(teacher, tmp_path, capsys):
    tokenizer = train_bpe_tokenizer(load_text_dataset()["validation"]["text"], vocab_size=512)
    student = tmp_path / "student"
    transformer(tokenizer, 32, 1, 2).save_pretrained(student)
    tokenizer.save_pretrained(student)
    err = bad_run(capsys, tmp_path / "o", "--teacher_model_name_or_path", teacher, "--model_name_or_path", student)
    assert "tokenizers differ" in err


def test_missing_teacher_and_not_one_student_are_one_line(teacher, student_config, tmp_path, capsys):
    assert "no teacher" in bad_run(capsys, tmp_path / "o", "--student_config", student_config)
    assert "does not exist" in bad_run(capsys, tmp_path / "o", "--teacher_model_name_or_path", tmp_path / "nope",
                                       "--student_config", student_config)
    assert "exactly one student" in bad_run(capsys, tmp_path / "o", "--teacher_model_name_or_path", teacher)
    assert "exactly one student" in bad_run(capsys, tmp_path / "o", "--teacher_model_name_or_path", teacher,
                                            "--student_config", student_config, "--model_name_or_path", teacher)
