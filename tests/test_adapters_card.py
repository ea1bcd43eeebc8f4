"""The model card that `hf-hundredpage merge-adapter` writes next to the merged model (book §5.5).

Tiny stock Llama models and a word-level tokenizer keep it fast; the fixtures are minimal copies of the ones in
tests/test_finetuning.py and tests/test_hub.py.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification, PreTrainedTokenizerFast

from hf_hundredpage.finetuning import merge_adapter


peft = pytest.importorskip("peft")

WORDS = "once upon a time there was a tiny language model that read the book and learned to write".split()
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }} {{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant{% endif %}"
)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_tokenizer(chat_template: str | None = None) -> PreTrainedTokenizerFast:
    vocab = {token: i for i, token in enumerate(["[UNK]", "[PAD]", "<s>", "</s>", *dict.fromkeys(WORDS)])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", bos_token="<s>", eos_token="</s>"
    )
    tokenizer.chat_template = chat_template
    return tokenizer


def tiny_config(**kwargs) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=128, pad_token_id=1, bos_token_id=2, eos_token_id=3, **kwargs,
    )


def save_base_and_adapter(root: Path, *, classifier: bool = False, chat_template: str | None = None) -> tuple[Path, Path]:
    """A saved tiny base and a LoRA adapter over it whose ``base_model_name_or_path`` is the base folder."""
    base_dir, adapter_dir = root / "base", root / "adapter"
    torch.manual_seed(0)
    model_class = LlamaForSequenceClassification if classifier else LlamaForCausalLM
    config = tiny_config(num_labels=2, id2label={0: "negative", 1: "positive"}) if classifier else tiny_config()
    model_class(config).save_pretrained(base_dir)
    make_tokenizer().save_pretrained(base_dir)
    base = model_class.from_pretrained(base_dir)
    lora = peft.LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                           task_type="SEQ_CLS" if classifier else "CAUSAL_LM")
    peft.get_peft_model(base, lora).save_pretrained(adapter_dir)
    if classifier:
        base.config.save_pretrained(adapter_dir)  # the labels, as the classify recipe saves them
    make_tokenizer(chat_template).save_pretrained(adapter_dir)
    return base_dir, adapter_dir


def python_block(text: str) -> str:
    return re.search(r"```python\n(.*?)```", text, flags=re.DOTALL).group(1)


def run_snippet(code: str) -> str:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        exec(compile(code, "<model card quick start>", "exec"), {})
    return stdout.getvalue()


def test_merge_adapter_writes_a_card_naming_its_parents(tmp_path):
    base_dir, adapter_dir = save_base_and_adapter(tmp_path, chat_template=CHAT_TEMPLATE)
    recorded_base = peft.PeftConfig.from_pretrained(str(adapter_dir)).base_model_name_or_path
    out = tmp_path / "merged"
    merge_adapter(adapter_dir, out)

    assert (out / "README.md").is_file()
    assert not [p for p in tmp_path.iterdir() if "staging" in p.name]
    card = ModelCard.load(out / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "transformers" and data["pipeline_tag"] == "text-generation"
    assert data["tags"][:3] == ["hf-hundredpage", "llama", "merge-adapter"]
    assert "base_model" not in data  # a local folder is not a Hub id
    assert card.text.lstrip().startswith("# merged\n")
    assert f"built on `{recorded_base}`, a LoRA adapter merged into its base model (book §5.5)" in card.text
    parents = card.text.split("## Parents")[1].split("\n## ")[0]
    assert f"Base model: `{recorded_base}`" in parents and f"Adapter: `{adapter_dir}`" in parents
    code = python_block(card.text)
    assert f'from_pretrained("{out}")' in code and "AutoPeftModelForCausalLM" not in code
    assert "apply_chat_template" in code  # the adapter's tokenizer has a chat template
    run_snippet(code)  # the merged folder loads and generates from the snippet alone


def test_merged_card_records_the_output_folder_as_given(tmp_path, monkeypatch):
    save_base_and_adapter(tmp_path)
    monkeypatch.chdir(tmp_path)
    merge_adapter("adapter", Path("out") / "merged")
    card = ModelCard.load(tmp_path / "out" / "merged" / "README.md")
    code = python_block(card.text)
    assert 'from_pretrained("out/merged")' in code and "apply_chat_template" not in code  # no chat template
    assert run_snippet(code).startswith("once upon a time")
    assert "Adapter: `adapter`" in card.text


def test_merged_classifier_card_has_the_classification_snippet(tmp_path):
    _, adapter_dir = save_base_and_adapter(tmp_path, classifier=True, chat_template=CHAT_TEMPLATE)
    merge_adapter(adapter_dir, tmp_path / "merged")
    card = ModelCard.load(tmp_path / "merged" / "README.md")
    assert card.data.pipeline_tag == "text-classification"
    probabilities = eval(run_snippet(python_block(card.text)))
    assert set(probabilities) == {"negative", "positive"}
