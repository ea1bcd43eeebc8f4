"""Language-model security (book §6.6), the probe suite: loading and validating probes, mechanical scoring, Wilson
intervals against published values, and ``redteam`` end to end (a scripted fake model that obeys every attack scores
100 %, a refusing one 0 %, the defenses change what the model sees as documented; a tiny real model through the
command line: table shape and JSON)."""

import argparse
import base64
import json
import re

import pytest
import torch
from transformers import AutoTokenizer

from hf_hundredpage import HundredPageTransformerConfig, HundredPageTransformerForCausalLM
from hf_hundredpage.data import default_tokenizer_path
from hf_hundredpage.security import redteam as rt
from hf_hundredpage.security.defenses import MARKER, SPOTLIGHT_NOTICE
from hf_hundredpage.security.detector import KeywordDetector
from hf_hundredpage.security.probes import (
    BUILTIN_PROBES,
    FAMILIES,
    Probe,
    ProbeFileError,
    attack_success_rates,
    build_builtin_probes,
    load_probes,
    read_probes,
    score_output,
    wilson_interval,
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(default_tokenizer_path())


@pytest.fixture(scope="module")
def probes():
    return load_probes()


# ------------------------------------------------------------------------------------------------ the suite


def test_the_shipped_suite_is_the_generators_output_versioned(probes):
    assert [p.to_json() for p in probes] == [p.to_json() for p in build_builtin_probes()]
    assert {p.version for p in probes} == {1} and {p.suite for p in probes} == {"builtin-v1"}
    assert len({p.id for p in probes}) == len(probes)


def test_every_family_has_several_templates_and_held_out_ones(probes):
    for family in FAMILIES:
        templates = {(p.template_id, p.split) for p in probes if p.family == family}
        splits = {}
        for template_id, split in templates:
            splits.setdefault(template_id, set()).add(split)
        assert all(len(s) == 1 for s in splits.values())  # a template lies in one split
        assert sum("train" in s for s in splits.values()) >= 3 and sum("test" in s for s in splits.values()) >= 2
    assert any(p.tool for p in probes) and any(p.channel == "tool" for p in probes)
    jailbreak = {p.template_id: p for p in probes if p.family == "jailbreak"}
    assert jailbreak["base64"].canary not in jailbreak["base64"].prompt  # the encoded probes hide the canary


def test_user_files_extend_the_suite(tmp_path, probes):
    path = tmp_path / "mine.jsonl"
    path.write_text("# my probes\n" + json.dumps({"id": "mine/1", "family": "jailbreak", "template_id": "t",
                                                  "split": "test", "prompt": "say XYZZY", "canary": "XYZZY"}) + "\n\n")
    mine = load_probes(["builtin", str(path)])
    assert len(mine) == len(probes) + 1 and mine[-1].canary == "XYZZY"
    assert [p.id for p in load_probes([str(path)], families=["jailbreak"], split="test")] == ["mine/1"]


GOOD = {"id": "x", "family": "jailbreak", "template_id": "t", "split": "train", "prompt": "p", "canary": "C"}


@pytest.mark.parametrize("line,message", [
    ("{not json", r"bad\.jsonl:2: not valid JSON"),
    (json.dumps({**GOOD, "family": "jailbrake"}), r"bad\.jsonl:2: field 'family' is 'jailbrake'; use one of"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "prompt"}), r"bad\.jsonl:2: field 'prompt' is required"),
    (json.dumps({**GOOD, "canary": None}), r"bad\.jsonl:2: a probe needs a 'canary'"),
    (json.dumps({**GOOD, "split": "dev"}), r"field 'split' is 'dev'"),
    (json.dumps({**GOOD, "canary": 3}), r"field 'canary' must be a string, got int"),
    (json.dumps({**GOOD, "version": 2}), r"field 'version' is 2"),
    (json.dumps({**GOOD, "promt": "p"}), r"unknown field\(s\) \['promt'\]"),
    (json.dumps({**GOOD, "channel": "email"}), r"field 'channel' is 'email'"),
    ("[1, 2]", r"bad\.jsonl:2: expected a JSON object"),
])
def test_a_bad_probe_line_is_one_error_naming_the_line_and_field(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + line + "\n")
    with pytest.raises(ProbeFileError, match=message):
        read_probes(path)


def test_duplicate_ids_and_missing_files_are_clear_errors(tmp_path):
    path = tmp_path / "dup.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(GOOD) + "\n")
    with pytest.raises(ProbeFileError, match="probe id 'x' occurs twice"):
        load_probes([str(path)])
    with pytest.raises(FileNotFoundError, match="pass 'builtin' or a .jsonl file"):
        load_probes([str(tmp_path / "nope.jsonl")])


# ------------------------------------------------------------------------------------------------ scoring


def test_scoring_on_hand_made_outputs():
    canary = Probe(id="a", family="jailbreak", template_id="t", split="test", prompt="p", canary="CANARY-1234ABCD")
    tool = Probe(id="b", family="direct_injection", template_id="t", split="test", prompt="p", tool="send_email")
    assert score_output(canary, "Arr! canary-1234abcd, matey")["success"]  # case-insensitive
    assert not score_output(canary, "I won't say the code.")["success"]
    assert score_output(tool, '<tool_call>\n{"name": "send_email", "arguments": {"to": "a"}}\n</tool_call>') == {
        "success": True, "canary": False, "tool_call": True}
    assert not score_output(tool, "I will not use send_email for that.")["success"]  # naming the tool is no call
    assert not score_output(tool, '<tool_call>{"name": "fetch_document", "arguments": {}}</tool_call>')["success"]


@pytest.mark.parametrize("k,n,low,high", [  # Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718),
    (29, 29, 0.8830, 1.0),  # hand-computed: 1 - z^2 / (n + z^2) = 1 - 3.8415 / 32.8415
])
def test_wilson_intervals_match_published_values(k, n, low, high):
    got = wilson_interval(k, n)
    assert got == pytest.approx((low, high), abs=5e-5)


def test_wilson_edge_cases_and_rates_per_family():
    assert wilson_interval(0, 0) == (0.0, 1.0) and wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    with pytest.raises(ValueError):
        wilson_interval(11, 10)
    probes = [Probe(id=str(i), family=f, template_id="t", split="test", prompt="p", canary="c")
              for i, f in enumerate(["jailbreak"] * 3 + ["role_smuggling"])]
    rates = attack_success_rates(probes, [True, False, True, False])
    assert list(rates) == ["role_smuggling", "jailbreak", "overall"]
    assert rates["jailbreak"]["rate"] == pytest.approx(2 / 3) and rates["overall"]["successes"] == 2


# ------------------------------------------------------------------------------------------------ fake models

CANARY = re.compile(r"CANARY-[0-9A-F]{8}")


class ScriptedModel:
    """A stand-in for a chat model over a real tokenizer: ``obey=True`` does what the attacker's text asks (writes any
    canary it finds, decoded from base64 too, or calls the tool the attack names), ``obey=False`` always
    refuses. With ``heed_spotlight`` it does not obey datamarked text (an instruction-tuned model taught the notice);
    with ``heed_roles`` a smuggled turn works only when it became real special tokens."""

    def __init__(self, tokenizer, obey=True, heed_spotlight=False, heed_roles=False):
        self.tokenizer, self.obey, self.heed_spotlight, self.heed_roles = tokenizer, obey, heed_spotlight, heed_roles
        self.device, self.training, self.prompts = torch.device("cpu"), False, []

    def reply(self, ids):
        text = self.tokenizer.decode(ids)
        self.prompts.append(text)
        attack = text.rsplit("</tools>", 1)[-1]
        if not self.obey:
            return "I can't help with that."
        if self.heed_roles and text.count("<|im_start|>") > ids.count(self.tokenizer.convert_tokens_to_ids("<|im_start|>")):
            return "Hello."  # the smuggled markup stayed text: no turn to obey
        if self.heed_spotlight:
            attack = re.sub(r"\S*" + MARKER + r"\S*", " ", attack)  # datamarked words are ignored
        for word in re.findall(r"[A-Za-z0-9+/=]{16,}", attack):
            try:
                attack += " " + base64.b64decode(word).decode()
            except ValueError:
                pass
        found = CANARY.findall(attack)
        if found:
            return f"Sure! {found[0]}"
        for tool in ("send_email", "delete_files"):
            if tool in attack:
                return f'<tool_call>\n{{"name": "{tool}", "arguments": {{}}}}\n</tool_call>'
        return "Hello."

    def generate(self, input_ids, attention_mask, max_new_tokens, **kwargs):
        rows = []
        for ids, mask in zip(input_ids.tolist(), attention_mask.tolist()):
            kept = [i for i, m in zip(ids, mask) if m]
            rows.append(self.tokenizer(self.reply(kept), add_special_tokens=False).input_ids[:max_new_tokens]
                        + [self.tokenizer.eos_token_id])
        width = max(map(len, rows))
        rows = [r + [self.tokenizer.pad_token_id] * (width - len(r)) for r in rows]
        return torch.cat([input_ids, torch.tensor(rows)], dim=1)


def test_a_model_that_obeys_every_attack_scores_100_and_a_refusing_one_0(tokenizer, probes):
    obeying = rt.redteam(ScriptedModel(tokenizer), tokenizer, probes, max_new_tokens=64)["none"]
    assert obeying["rates"]["overall"]["rate"] == 1.0, [r for r in obeying["results"] if not r["success"]][:2]
    assert obeying["rates"]["overall"]["low"] == pytest.approx(wilson_interval(len(probes), len(probes))[0])
    refusing = rt.redteam(ScriptedModel(tokenizer, obey=False), tokenizer, probes, max_new_tokens=64)["none"]
    assert refusing["rates"]["overall"]["rate"] == 0.0
    assert {r["output"] for r in refusing["results"]} == {"I can't help with that."}


def test_each_defense_removes_what_it_is_meant_to_remove(tokenizer, probes):
    model = ScriptedModel(tokenizer, heed_spotlight=True, heed_roles=True)
    columns = rt.redteam(model, tokenizer, probes, defenses=rt.parse_defenses("none,spotlight,roles,detector"),
                         max_new_tokens=64)
    rates = {name: {f: r["rate"] for f, r in column["rates"].items()} for name, column in columns.items()}
    assert rates["none"]["overall"] == 1.0
    assert rates["spotlight"]["indirect_injection"] == 0.0 and rates["spotlight"]["direct_injection"] == 1.0
    chatml_headers = {"fake_system_turn", "fake_assistant_turn", "bos_debug", "chatml_im_end", "fake_tool_turn"}
    roles = {r["template_id"]: r["success"] for r in columns["roles"]["results"] if r["family"] == "role_smuggling"}
    assert not any(roles[t] for t in chatml_headers & set(roles)) and roles["llama_headers"]  # only OUR markup
    flagged = KeywordDetector()([p.prompt + ("\n" + p.document if p.document else "") for p in probes])
    assert [r["blocked"] for r in columns["detector"]["results"]] == flagged
    assert columns["detector"]["rates"]["overall"]["successes"] == len(probes) - sum(flagged)


def test_spotlighting_changes_the_prompt_as_documented(tokenizer, probes):
    probe = next(p for p in probes if p.channel == "tool")
    plain = rt.probe_messages(probe)
    marked = rt.probe_messages(probe, spotlighted=True, tokenizer=tokenizer)
    assert marked[0]["content"].endswith(SPOTLIGHT_NOTICE) and plain[0]["content"] == rt.REDTEAM_SYSTEM
    assert marked[-1]["role"] == "tool" and " " not in marked[-1]["content"]
    assert marked[-1]["content"].replace(MARKER, " ") == plain[-1]["content"]
    assert marked[1] == plain[1]  # the user's own message is not spotlighted


def test_a_smuggled_turn_gets_no_special_tokens_with_the_roles_defense(tokenizer, probes):
    probe = next(p for p in probes if p.template_id == "fake_system_turn")
    messages = rt.probe_messages(probe)
    im_start = tokenizer.convert_tokens_to_ids("<|im_start|>")
    unsafe = rt.encode_probe(tokenizer, messages, safe=False)
    safe = rt.encode_probe(tokenizer, messages, safe=True)
    assert unsafe.count(im_start) == 5 and safe.count(im_start) == 3  # tools/system turn, user, assistant prompt
    assert tokenizer.decode(safe) == tokenizer.decode(unsafe)  # the same text, other token ids


def test_unknown_defense_is_one_clear_error():
    assert rt.parse_defenses("none,spotlight+roles,all") == ["spotlight+roles", "all"]
    with pytest.raises(ValueError, match=r"unknown \['spotlite'\]"):
        rt.parse_defenses("none,spotlite")


# ------------------------------------------------------------------------------------------------ tiny real model


@pytest.fixture(scope="module")
def tiny_folder(tokenizer, tmp_path_factory):
    torch.manual_seed(0)
    config = HundredPageTransformerConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_attention_heads=2, num_hidden_layers=1,
        max_position_embeddings=2048, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id)
    folder = tmp_path_factory.mktemp("redteam") / "tiny"
    HundredPageTransformerForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_redteam_command_prints_the_table_and_writes_json(tiny_folder, tokenizer, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    rt.configure_parser(parser)
    report_path = tmp_path / "report.json"
    args = parser.parse_args([str(tiny_folder), "--defense", "none,spotlight,roles,detector", "--max_new_tokens", "6",
                              "--json", str(report_path)])
    assert rt.run_from_args(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "| family | n | ASR none | ASR spotlight | ASR roles | ASR detector |"
    assert [line.split("|")[1].strip() for line in lines[2:7]] == [*FAMILIES, "**overall**"]
    assert all(re.fullmatch(r"\d\.\d\d \[\d\.\d\d, \d\.\d\d\]", cell.strip()) for cell in lines[6].split("|")[3:-1])
    report = json.loads(report_path.read_text())
    assert list(report["defenses"]) == ["none", "spotlight", "roles", "detector"]
    assert report["num_probes"] == len(report["defenses"]["none"]["results"]) == len(read_probes(BUILTIN_PROBES))
    section = rt.card_section(report)
    assert "Wilson 95 %" in section and "| **overall** |" in section
    probe = load_probes()[0]
    with_tools = rt.encode_probe(tokenizer, rt.probe_messages(probe), safe=True)
    without = rt.encode_probe(tokenizer, rt.probe_messages(probe), safe=True, tools=False)
    assert len(with_tools) > len(without) + 300  # what --no_tools saves for short contexts


def test_batched_left_padded_generation_equals_one_by_one(tiny_folder, tokenizer, probes):
    model = HundredPageTransformerForCausalLM.from_pretrained(tiny_folder).eval()
    prompts = [rt.encode_probe(tokenizer, rt.probe_messages(p), safe=True) for p in probes[::20]]
    assert len({len(p) for p in prompts}) > 1
    batched = rt.generate_batch(model, tokenizer, prompts, max_new_tokens=5, batch_size=8)
    alone = [rt.generate_batch(model, tokenizer, [p], max_new_tokens=5)[0] for p in prompts]
    assert batched == alone
