"""The Hugging Face source: one split of a dataset on the Hub, or of a dataset folder on disk.

``source = "huggingface"`` (see :mod:`tasks.sources`); settings ``hf_dataset``, ``hf_split``,
``hf_config`` and ``hf_revision``. Loaded with ``datasets.load_dataset``, so the Hub's cache, the
``HF_TOKEN`` for private sets and offline mode (``HF_HUB_OFFLINE=1``) work as users know them.

Example::

    from tasks.sources.huggingface import load_huggingface

    records, info = load_huggingface("org/pairs", split="train")   # info["type"] == "huggingface"
"""

from __future__ import annotations

from typing import Any

from tasks.config import RunConfig
from tasks.io import InvalidInputError, StepError

#: The value of ``source`` that selects this module.
NAME = "huggingface"


def load(cfg: RunConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The source's entry point: split ``cfg.hf_split`` of ``cfg.hf_dataset``."""
    return load_huggingface(
        cfg.hf_dataset, split=cfg.hf_split, config=cfg.hf_config, revision=cfg.hf_revision
    )


def load_huggingface(
    dataset: str, *, split: str = "train", config: str = "", revision: str = ""
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Load one split of a Hugging Face dataset (Hub id or local folder) with ``datasets``."""
    try:
        import datasets
        from datasets.exceptions import DatasetNotFoundError
    except ImportError:  # pragma: no cover - datasets is a pinned dependency
        raise StepError("the 'datasets' package is not installed") from None
    try:
        ds = datasets.load_dataset(
            dataset, name=config or None, split=split, revision=revision or None
        )
    except DatasetNotFoundError:
        raise InvalidInputError(
            f"Hugging Face dataset {dataset!r} was not found (or is private): check hf_dataset "
            f"and the token"
        ) from None
    except ValueError as exc:
        text = str(exc).splitlines()[0]
        raise InvalidInputError(f"cannot load split {split!r} of {dataset!r}: {text}") from None
    except (ConnectionError, OSError) as exc:
        raise StepError(
            f"could not reach the Hugging Face Hub for {dataset!r} ({type(exc).__name__}): "
            f"check the network"
        ) from None
    if len(ds) == 0:
        raise InvalidInputError(f"split {split!r} of Hugging Face dataset {dataset!r} is empty")
    info = {
        "type": "huggingface",
        "dataset": dataset,
        "config": config or None,
        "split": split,
        "revision": revision or None,
        "fingerprint": getattr(ds, "_fingerprint", None),
    }
    return ds.to_list(), info
