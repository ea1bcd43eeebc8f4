"""Language-model security (book §6.6), library code only.

* `probes`: the versioned prompt-injection / jailbreak probe suite (``probes/builtin.jsonl``), user JSONL probes,
  mechanical scoring (canary written, tool called) and Wilson intervals;
* `redteam`: ``hf-hundredpage redteam MODEL``: attack success rate per family, before and after each defense;
* `defenses`: spotlighting of untrusted content (on by default in the tool loop) and role separation in tokenization
  (`encode_chat_safely`); the tool allow-list and confirmation of dangerous tools live in `reasoning.tools`;
* `detector`: the keyword baseline, a classifier trained on ``builtin:injections`` as a detector, and `guard`, which
  puts either in front of the tool loop. ``builtin:refusals`` is the preference data for alignment as a defense.
"""

from .defenses import encode_chat_safely, spotlight, unspotlight
from .probes import FAMILIES, Probe, ProbeFileError, load_probes, score_output, wilson_interval


__all__ = ["FAMILIES", "Probe", "ProbeFileError", "encode_chat_safely", "load_probes", "score_output", "spotlight",
           "unspotlight", "wilson_interval"]
