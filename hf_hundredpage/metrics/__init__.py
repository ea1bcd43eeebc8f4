"""Local `evaluate` metric modules, loadable without the Hugging Face Hub (book §2.6).

`evaluate.load("perplexity")` and the like fetch their scripts from the Hub; the modules in this folder load
from disk. Each lives in `metrics/<name>/<name>.py` and depends only on `evaluate` and `datasets`, so it can
be copied anywhere and loaded with `evaluate.load(path_to_its_folder)`.

```python
>>> from hf_hundredpage.metrics import load_metric
>>> bpb = load_metric("bits_per_byte")
>>> bpb.compute(nll=[2.0, 1.0], n_bytes=[3, 1])  # 3 nats / ln 2 / 4 bytes
{'bits_per_byte': 1.0820212806667227}
```
"""

from __future__ import annotations

import os


METRICS_DIR = os.path.dirname(os.path.abspath(__file__))

__all__ = ["METRICS_DIR", "available_metrics", "load_metric", "metric_path"]


def available_metrics() -> list[str]:
    """Names of the metric modules shipped in this folder."""
    return sorted(
        name
        for name in os.listdir(METRICS_DIR)
        if os.path.isfile(os.path.join(METRICS_DIR, name, f"{name}.py"))
    )


def metric_path(name: str) -> str:
    """The folder of the local metric module `name`, for `evaluate.load`."""
    path = os.path.join(METRICS_DIR, name)
    if not os.path.isfile(os.path.join(path, f"{name}.py")):
        raise ValueError(f"no local metric named {name!r}; choose one of {available_metrics()}")
    return path


def load_metric(name: str, **kwargs):
    """`evaluate.load` of the local metric module `name` (no Hub access); `kwargs` go to `evaluate.load`."""
    import evaluate

    return evaluate.load(metric_path(name), **kwargs)
