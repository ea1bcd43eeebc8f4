"""hf_hundredpage.classification: the synthetic emotions data, dataset loading and label maps, the bag-of-words and
majority baselines against scikit-learn and hand-computed values, and the text-generation route's scoring."""

import json

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Value
from transformers import AutoTokenizer, EvalPrediction

from hf_hundredpage import (
    HundredPageRNNConfig,
    HundredPageRNNForCausalLM,
    HundredPageTransformerConfig,
    HundredPageTransformerForCausalLM,
)
from hf_hundredpage.data import default_tokenizer_path
from hf_hundredpage.data.builtin.emotions import EMOTION_KEYWORDS, make_text_classification_dataset
from hf_hundredpage.data.classification import (
    DEFAULT_PROMPT_TEMPLATE,
    load_classification_dataset,
    to_prompt_completion,
)
from hf_hundredpage.evaluation.classification import (
    BagOfWordsBaseline,
    classification_metrics,
    compute_classification_metrics,
    exact_match_accuracy,
    generate_labels,
    majority_class_metrics,
)


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(default_tokenizer_path())


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def keyword_class(text: str) -> str:
    words = set(text.split())
    (emotion,) = [name for name, keywords in EMOTION_KEYWORDS.items() if words & set(keywords)]
    return emotion


# ------------------------------------------------------------------------------------------ synthetic dataset


def test_synthetic_dataset_is_seeded_split_and_labelled_by_its_keyword():
    data = make_text_classification_dataset(300, seed=3, noise=0.0)
    assert {split: len(data[split]) for split in data} == {"train": 240, "validation": 30, "test": 30}
    assert data["train"].features["label"].names == ["anger", "fear", "joy", "sadness"]
    assert make_text_classification_dataset(300, seed=3, noise=0.0)["train"][:] == data["train"][:]
    assert make_text_classification_dataset(300, seed=4, noise=0.0)["train"]["text"] != data["train"]["text"]
    names = data["train"].features["label"].names
    for split in data.values():  # without noise the keyword decides the label
        assert all(keyword_class(t) == names[label] for t, label in zip(split["text"], split["label"]))


def test_synthetic_dataset_noise_flips_that_share_of_labels():
    data = make_text_classification_dataset(2000, seed=0, noise=0.2)["train"]
    names = data.features["label"].names
    agree = np.mean([keyword_class(t) == names[label] for t, label in zip(data["text"], data["label"])])
    assert 0.76 < agree < 0.84  # 1600 rows: 0.8 +- 2.5 standard deviations


# ------------------------------------------------------------------------------------------ loading


def test_string_labels_get_a_sorted_map_and_missing_splits_are_carved_stratified(tmp_path):
    rows = [{"sentence": f"text {i}", "emotion": ["joy", "anger", "fear"][i % 3]} for i in range(60)]
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    data, id2label, label2id = load_classification_dataset(
        str(path), text_column="sentence", label_column="emotion", validation_fraction=0.2, test_fraction=0.2, seed=1
    )
    assert id2label == {0: "anger", 1: "fear", 2: "joy"} and label2id == {"anger": 0, "fear": 1, "joy": 2}
    assert {split: len(data[split]) for split in data} == {"train": 36, "validation": 12, "test": 12}
    assert all(data[split].column_names == ["text", "label"] for split in data)
    for split in ("validation", "test"):  # stratified: each class keeps its third
        assert np.bincount(data[split]["label"]).tolist() == [4, 4, 4]
    original = {row["sentence"]: row["emotion"] for row in rows}
    for split in data.values():
        assert all(original[text] == id2label[label] for text, label in zip(split["text"], split["label"]))
    texts = [t for split in data.values() for t in split["text"]]
    assert sorted(texts) == sorted(original)  # a partition: no row lost or repeated


def test_class_label_names_keep_their_order_and_integer_labels_are_sorted(tmp_path):
    features = Features({"text": Value("string"), "label": ClassLabel(names=["sadness", "joy", "love"])})
    folder = tmp_path / "classlabel"
    folder.mkdir()
    for split, labels in (("train", [0, 1, 2, 1]), ("validation", [2, 0]), ("test", [1, 1])):
        Dataset.from_dict({"text": [f"{split} {i}" for i in range(len(labels))], "label": labels},
                          features=features).to_parquet(str(folder / f"{split}.parquet"))
    data, id2label, _ = load_classification_dataset(str(folder))
    assert id2label == {0: "sadness", 1: "joy", 2: "love"}
    assert data["test"]["label"] == [1, 1] and data["validation"]["label"] == [2, 0]

    rows = [{"text": f"t{i}", "label": label} for i, label in enumerate([7, 3, 5, 3, 7, 5] * 5)]
    data, id2label, label2id = load_classification_dataset(str(write_jsonl(tmp_path / "ints.jsonl", rows)))
    assert id2label == {0: "3", 1: "5", 2: "7"} and label2id == {"3": 0, "5": 1, "7": 2}
    lookup = {row["text"]: row["label"] for row in rows}
    assert all(int(id2label[label]) == lookup[text] for text, label in zip(data["train"]["text"], data["train"]["label"]))


def test_a_test_label_missing_from_train_is_a_clear_error(tmp_path):
    folder = tmp_path / "splits"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", [{"text": "a", "label": "joy"}, {"text": "b", "label": "anger"}])
    write_jsonl(folder / "validation.jsonl", [{"text": "c", "label": "joy"}])
    write_jsonl(folder / "test.jsonl", [{"text": "d", "label": "surprise"}, {"text": "e", "label": "joy"}])
    with pytest.raises(ValueError, match=r"test split .* 'surprise' that the train split does not have \('anger', 'joy'\)"):
        load_classification_dataset(str(folder))
    write_jsonl(folder / "test.jsonl", [{"text": "d", "label": None}, {"text": "e", "label": "joy"}])
    with pytest.raises(ValueError, match="test split .* has 1 rows without a label"):
        load_classification_dataset(str(folder))


def test_bad_sources_and_columns_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown built-in dataset 'builtin:nope'.*builtin:emotions"):
        load_classification_dataset("builtin:nope")
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}])
    with pytest.raises(ValueError, match=r"no column 'category' \(columns: \['text', 'label'\]\)"):
        load_classification_dataset(str(path), label_column="category")
    single = write_jsonl(tmp_path / "one.jsonl", [{"text": "a", "label": "x"}] * 10)
    with pytest.raises(ValueError, match="1 label"):
        load_classification_dataset(str(single))
    with pytest.raises(ValueError, match="No such file or directory: .*missing.csv; pass 'builtin:emotions'") as error:
        load_classification_dataset(str(tmp_path / "missing.csv"))
    assert "hundredpage-wiki" not in str(error.value)  # a text corpus without labels is no advice here


def test_builtin_emotions_is_fixed_and_subsampled_by_seed():
    data, id2label, _ = load_classification_dataset("builtin:emotions", seed=1)
    again, _, _ = load_classification_dataset("builtin:emotions", seed=2)
    assert data["train"]["text"] == again["train"]["text"]  # the data does not depend on the training seed
    assert id2label == {0: "anger", 1: "fear", 2: "joy", 3: "sadness"}
    small, _, _ = load_classification_dataset("builtin:emotions", max_train_samples=50, max_eval_samples=20, seed=1)
    assert (len(small["train"]), len(small["validation"]), len(small["test"])) == (50, 20, 20)
    assert set(small["train"]["text"]) <= set(data["train"]["text"])


# ------------------------------------------------------------------------------------------ metrics and baselines


def test_classification_metrics_match_hand_computed_values():
    # Per-class F1: class 0 (P 1, R 1/2) 2/3, class 1 (P 1/2, R 1) 2/3, class 2 1.
    assert classification_metrics([0, 0, 1, 2], [0, 1, 1, 2]) == pytest.approx({"eval_accuracy": 0.75, "eval_macro_f1": 7 / 9})
    # A prediction outside `labels` is an error for its true class but no class of its own.
    scores = classification_metrics(["a", "b"], ["a", "junk"], prefix="", labels=["a", "b"])
    assert scores == pytest.approx({"accuracy": 0.5, "macro_f1": (1 + 0) / 2})
    logits = np.array([[2.0, 0.1, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0], [5.0, 0.0, 0.0]])
    # Arg-max [0, 1, 2, 0] against [0, 1, 2, 2]: F1 2/3 (class 0), 1 (class 1), 2/3 (class 2).
    eval_pred = EvalPrediction(predictions=logits, label_ids=np.array([0, 1, 2, 2]))
    assert compute_classification_metrics(eval_pred) == pytest.approx({"accuracy": 0.75, "macro_f1": 7 / 9})
    with pytest.raises(ValueError, match="one prediction per label"):
        classification_metrics([0, 1], [0])


def test_majority_class_baseline():
    # Always 1: class 1 has P 3/4, R 1, F1 6/7; class 0 is never predicted, F1 0.
    expected = {"accuracy": 0.75, "macro_f1": (6 / 7) / 2}
    assert majority_class_metrics([1, 1, 2, 0], [1, 0, 1, 1], prefix="") == pytest.approx(expected)
    assert majority_class_metrics([2, 2, 0, 0], [0, 2], prefix="m_")["m_accuracy"] == 0.5  # ties: smallest label


def test_bag_of_words_baseline_equals_scikit_learn_directly():
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    data = make_text_classification_dataset(600, seed=5)
    train, test = data["train"], data["test"]
    baseline = BagOfWordsBaseline().fit(train["text"], train["label"])
    vectorizer = CountVectorizer(max_features=10_000, binary=True)  # the book's notebook, verbatim
    reference = LogisticRegression(random_state=42, max_iter=1000).fit(vectorizer.fit_transform(train["text"]), train["label"])
    expected = reference.predict(vectorizer.transform(test["text"]))
    np.testing.assert_array_equal(baseline.predict(test["text"]), expected)
    scores = baseline.evaluate(test["text"], test["label"])
    assert scores["eval_accuracy"] == pytest.approx(np.mean(expected == np.array(test["label"])))
    assert scores["eval_accuracy"] > majority_class_metrics(train["label"], test["label"])["eval_accuracy"] + 0.3
    tfidf = BagOfWordsBaseline(vectorizer="tfidf", ngram_range=(1, 2)).fit(train["text"], train["label"])
    assert tfidf.evaluate(test["text"], test["label"])["eval_accuracy"] > 0.8
    with pytest.raises(ValueError, match="'count' or 'tfidf'"):
        BagOfWordsBaseline(vectorizer="hashing")


# ------------------------------------------------------------------------------------------ generation route


def test_to_prompt_completion_rows():
    data = make_text_classification_dataset(60, seed=0)
    names = dict(enumerate(data["train"].features["label"].names))
    rows = to_prompt_completion(data, {str(k): v for k, v in names.items()})  # JSON-style string keys work too
    assert rows["train"].column_names == ["prompt", "completion"]
    first = data["train"][0]
    assert rows["train"][0] == {
        "prompt": f"Predict the emotion of the text.\nText: {first['text']}\nEmotion:",
        "completion": " " + names[first["label"]],
    }
    assert DEFAULT_PROMPT_TEMPLATE.replace("{text}", "x") == "Predict the emotion of the text.\nText: x\nEmotion:"
    custom = to_prompt_completion(data["test"], names, "{text} =>")
    assert custom[0]["prompt"] == data["test"][0]["text"] + " =>"
    with pytest.raises(ValueError, match="no '{text}' placeholder"):
        to_prompt_completion(data["test"], names, "Emotion:")
    with pytest.raises(ValueError, match=r"label id\(s\) \[3\]"):
        to_prompt_completion(data["test"].filter(lambda row: row["label"] == 3), {0: "a", 1: "b", 2: "c"})


class ScriptedModel(torch.nn.Module):
    """A stand-in language model whose greedy completion of each prompt is fixed in advance."""

    def __init__(self, tokenizer, answers: dict[str, str]):
        super().__init__()
        self.tokenizer, self.answers = tokenizer, answers
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.left_padded = []

    @property
    def device(self):
        return self.anchor.device

    def generate(self, input_ids, attention_mask, max_new_tokens, pad_token_id, eos_token_id, **kwargs):
        self.left_padded.append(bool(attention_mask[:, -1].all()))
        prompts = self.tokenizer.batch_decode(input_ids, skip_special_tokens=True)
        new = [self.tokenizer(self.answers[p]).input_ids + [eos_token_id] for p in prompts]
        width = min(max(map(len, new)), max_new_tokens)
        new = [(ids + [pad_token_id] * width)[:width] for ids in new]
        return torch.cat([input_ids, torch.tensor(new)], dim=1)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_exact_match_takes_the_first_line_stripped(tokenizer, batch_size):
    prompts = [DEFAULT_PROMPT_TEMPLATE.replace("{text}", t) for t in ("i feel glad", "so sad today", "livid", "fine")]
    answers = dict(zip(prompts, [" joy", " sadness\nText: more words", "  anger  ", " joyful"]))
    model = ScriptedModel(tokenizer, answers)
    labels = [" joy", "sadness", "anger", "joy"]
    assert exact_match_accuracy(model, tokenizer, prompts, labels, batch_size=batch_size) == 0.75
    assert generate_labels(model, tokenizer, prompts, batch_size=batch_size) == ["joy", "sadness", "anger", "joyful"]
    assert all(model.left_padded)  # batches are left-padded, so every completion starts right after its prompt
    assert tokenizer.padding_side == "right"  # and the tokenizer is left as it was
    with pytest.raises(ValueError, match="one label per prompt"):
        exact_match_accuracy(model, tokenizer, prompts, labels[:2])


@pytest.mark.parametrize("architecture", ["transformer", "rnn"])
def test_batched_generation_equals_one_prompt_at_a_time(tokenizer, architecture):
    ids = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    if architecture == "transformer":
        model = HundredPageTransformerForCausalLM(HundredPageTransformerConfig(
            vocab_size=len(tokenizer), hidden_size=32, num_attention_heads=2, num_hidden_layers=1, **ids))
    else:
        model = HundredPageRNNForCausalLM(HundredPageRNNConfig(
            vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, **ids))
    prompts = [DEFAULT_PROMPT_TEMPLATE.replace("{text}", t) for t in ("a", "a much longer text than the first one", "mid text")]
    model.train()
    batched = generate_labels(model, tokenizer, prompts, max_new_tokens=5, batch_size=3)
    assert model.training  # the training mode is restored
    assert batched == generate_labels(model, tokenizer, prompts, max_new_tokens=5, batch_size=1)
