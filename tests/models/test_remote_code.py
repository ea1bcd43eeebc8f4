"""A saved folder loads with `trust_remote_code=True` in a process where `hf_hundredpage` cannot be imported."""

import re
import subprocess
import sys
import textwrap

import pytest
import torch

from hf_hundredpage import (
    HundredPageRNNConfig,
    HundredPageRNNForCausalLM,
    HundredPageTransformerConfig,
    HundredPageTransformerForCausalLM,
)

from .helpers import tiny_inputs


REMOTE_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, sys

    class BlockPackage(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "hf_hundredpage" or name.startswith("hf_hundredpage."):
                raise ImportError("hf_hundredpage is deliberately not importable here")

    sys.meta_path.insert(0, BlockPackage())
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    folder, ids_path, out_path = sys.argv[1:4]
    try:
        import hf_hundredpage  # noqa: F401
        raise SystemExit("hf_hundredpage was importable: the test would prove nothing")
    except ImportError:
        pass
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
    assert "hf_hundredpage" not in type(model).__module__, type(model).__module__
    ids = torch.load(ids_path)
    with torch.no_grad():
        logits = model(ids).logits
    generated = model.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=0)
    classifier = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True, num_labels=3)
    assert classifier(ids).logits.shape == (ids.shape[0], 3)
    assert AutoConfig.from_pretrained(folder, trust_remote_code=True).model_type == model.config.model_type
    torch.save({"logits": logits, "generated": generated, "module": type(model).__module__}, out_path)
    """
)


@pytest.mark.parametrize(
    "model_cls,config",
    [
        (HundredPageTransformerForCausalLM, HundredPageTransformerConfig(vocab_size=61, hidden_size=16, num_attention_heads=2, pad_token_id=0)),
        (HundredPageRNNForCausalLM, HundredPageRNNConfig(vocab_size=61, hidden_size=16, pad_token_id=0)),
    ],
)
def test_loads_without_the_package(tmp_path, model_cls, config):
    torch.manual_seed(0)
    model = model_cls(config).eval()
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    import json

    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    assert set(auto_map) == {"AutoConfig", "AutoModel", "AutoModelForCausalLM", "AutoModelForSequenceClassification"}
    code_files = sorted(p.name for p in folder.glob("*.py"))
    package_import = re.compile(r"^\s*(from|import)\s+hf_hundredpage", re.MULTILINE)
    assert len(code_files) == 2 and not any(package_import.search((folder / f).read_text()) for f in code_files)

    ids, _ = tiny_inputs(vocab=61, batch=2, length=6)
    torch.save(ids, tmp_path / "ids.pt")
    script = tmp_path / "remote.py"
    script.write_text(REMOTE_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), str(folder), str(tmp_path / "ids.pt"), str(tmp_path / "out.pt")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HF_HOME": str(tmp_path / "hf_home")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    remote = torch.load(tmp_path / "out.pt")
    assert remote["module"].startswith("transformers_modules")
    with torch.no_grad():
        torch.testing.assert_close(remote["logits"], model(ids).logits, rtol=0, atol=0)
    assert torch.equal(remote["generated"], model.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=0))
