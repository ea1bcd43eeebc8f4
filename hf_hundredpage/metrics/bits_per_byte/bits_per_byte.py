"""Bits per byte: a language model's negative log-likelihood per byte of text, in bits (book §2.6)."""

import math

import datasets
import evaluate


_CITATION = """\
@book{burkov2025hundredpage,
  title = {The Hundred-Page Language Models Book},
  author = {Burkov, Andriy},
  year = {2025}
}
"""

_DESCRIPTION = """\
Bits per byte is the total negative log-likelihood (NLL) that a language model assigns to a text, converted
from nats to bits and divided by the number of UTF-8 bytes of that text: sum(nll) / ln(2) / sum(n_bytes).
Unlike perplexity it does not depend on the tokenizer, so models with different vocabularies can be compared.
"""

_KWARGS_DESCRIPTION = """
Args:
    nll (`list` of `float`): total negative log-likelihood, in nats, of each document (or batch).
    n_bytes (`list` of `int`): number of UTF-8 bytes of the same documents.
Returns:
    bits_per_byte (`float`): sum(nll) / ln(2) / sum(n_bytes).
Examples:
    >>> metric = evaluate.load("path/to/hf_hundredpage/metrics/bits_per_byte")
    >>> metric.compute(nll=[2.0, 1.0], n_bytes=[3, 1])
    {'bits_per_byte': 1.0820212806667227}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class BitsPerByte(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"nll": datasets.Value("float64"), "n_bytes": datasets.Value("int64")}),
        )

    def _compute(self, nll, n_bytes):
        total_bytes = sum(n_bytes)
        if total_bytes <= 0:
            raise ValueError(f"the documents have {total_bytes} bytes in all: pass each one's UTF-8 length as n_bytes")
        return {"bits_per_byte": sum(nll) / math.log(2) / total_bytes}
