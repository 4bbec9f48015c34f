"""Shared by the benchmarks: what machine a figure came from, and writing tables into the docs."""

from __future__ import annotations

import datetime
import os
import platform
import re
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
