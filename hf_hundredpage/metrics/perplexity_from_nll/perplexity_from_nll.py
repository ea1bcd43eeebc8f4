"""Perplexity computed from negative log-likelihoods already summed per document (book §2.6).

The Hub's `perplexity` metric runs a model itself; this one only aggregates: it takes the NLL a model
assigned to each document and the number of tokens scored in it, so it fits `Trainer.compute_metrics`,
streaming evaluation with `add_batch`, and count-based models alike.
"""

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
Perplexity is the exponential of the average negative log-likelihood per token:
exp(sum(nll) / sum(n_tokens)), with the NLL in nats. Lower is better; a model that spreads its probability
uniformly over V tokens has perplexity V.
"""

_KWARGS_DESCRIPTION = """
Args:
    nll (`list` of `float`): total negative log-likelihood, in nats, of each document (or batch).
    n_tokens (`list` of `int`): number of tokens scored in the same documents.
Returns:
    loss (`float`): the average NLL per token, sum(nll) / sum(n_tokens), in nats.
    perplexity (`float`): exp(loss).
Examples:
    >>> metric = evaluate.load("path/to/hf_hundredpage/metrics/perplexity_from_nll")
    >>> metric.compute(nll=[3.0, 1.0], n_tokens=[3, 1])
    {'loss': 1.0, 'perplexity': 2.718281828459045}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PerplexityFromNll(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"nll": datasets.Value("float64"), "n_tokens": datasets.Value("int64")}),
        )

    def _compute(self, nll, n_tokens):
        total_tokens = sum(n_tokens)
        if total_tokens <= 0:
            raise ValueError(f"{total_tokens} tokens scored in all: pass each document's scored tokens as n_tokens")
        loss = sum(nll) / total_tokens
        try:
            perplexity = math.exp(loss)
        except OverflowError:
            perplexity = math.inf
        return {"loss": loss, "perplexity": perplexity}
