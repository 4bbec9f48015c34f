"""``python -m tasks <step> --run-dir DIR [options]``: every step as a command.

Steps: ``prepare``, ``mine`` (hard negatives), ``train``, ``evaluate --model
base|finetuned|champion``, ``report``,
``register`` (MLflow run, model version, champion gate), ``publish`` (Hub push if promoted);
helpers: ``demo-data --out FILE`` (writes the demo dataset) and ``show --run-dir DIR`` (prints a
finished run's table and where its files are).

Contract: the last stdout line is one JSON object (the step summary); exit code 0 = done,
99 = nothing to do, 3 = invalid input (fix the data or parameters; retrying cannot help),
1 = failure (a one-line reason is the last stderr line).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tasks.config import ConfigError, RunConfig, add_cli_options, config_from_cli
from tasks.io import (
    EXIT_FAILED,
    EXIT_INVALID_INPUT,
    EXIT_NOTHING_TO_DO,
    EXIT_OK,
    NothingToDo,
    StepError,
    prepared,
    read_json,
    write_json,
)

STEPS = ("prepare", "mine", "train", "evaluate", "report", "register", "publish")


def _apply_argilla_shorthand(args: argparse.Namespace) -> None:
    """``--argilla NAME`` = ``--source argilla --argilla-dataset NAME`` (conflicts are errors)."""
    name = getattr(args, "argilla", None)
    if not name:
        return
    if getattr(args, "source", None) not in (None, "argilla"):
        raise ConfigError(f"--argilla {name} conflicts with --source {args.source}: give one")
    if getattr(args, "argilla_dataset", None) not in (None, name):
        raise ConfigError(
            f"--argilla {name} conflicts with --argilla-dataset {args.argilla_dataset}: give one"
        )
    args.source, args.argilla_dataset = "argilla", name


def _resolve_config(args: argparse.Namespace, run_dir: Path, step: str) -> RunConfig:
    """Config for a step: the run's ``config.json`` (written by prepare) overridden by options."""
    _apply_argilla_shorthand(args)
    saved = run_dir / "config.json"
    base = read_json(saved) if step != "prepare" and saved.exists() else None
    return config_from_cli(args, base)


def _run_step(args: argparse.Namespace) -> dict[str, Any]:
    run_dir = Path(args.run_dir).expanduser().resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = _resolve_config(args, run_dir, args.step)
    if args.step == "prepare":
        from tasks.data import prepare

        write_json(run_dir / "config.json", cfg.to_dict())
        return prepare(cfg, run_dir)
    if args.step == "mine":
        from tasks.mine import mine

        return mine(cfg, run_dir)
    if args.step == "train":
        from tasks.launch import per_process_batch_size, planned_processes, run_training_processes

        finished = (run_dir / "train" / "summary.json").exists()
        processes = 1 if finished else planned_processes(cfg.train_processes)
        if processes > 1:
            # data parallel: re-run this command under torchrun; the summary is rank 0's
            per_process_batch_size(cfg.batch_size, processes)  # fail before starting processes
            if (run_dir / "data" / "manifest.json").exists():  # else the ranks say what is missing
                _mine_in_own_process(args.argv)  # once, before them; no GPU memory kept here
            return run_training_processes(args.argv, processes)
        from tasks.train import train

        return train(cfg, run_dir)
    if args.step == "evaluate":
        return _evaluate(cfg, run_dir, args.model, use_cache=not args.no_cache)
    if args.step == "report":
        from tasks.report import report

        return report(run_dir, cfg)
    if args.step == "register":
        from tasks.tracking import register

        return register(cfg, run_dir)
    if args.step == "publish":
        from tasks.publish import publish

        return publish(cfg, run_dir)
    raise StepError(f"unknown step {args.step!r}")


def _mine_in_own_process(train_argv: list[str]) -> None:
    """Run the mine step for a ``train`` command line in a process of its own (a no-op when it
    ran already): the launcher of several training processes must not hold the base model or a
    CUDA context on a GPU that rank 0 trains on."""
    import subprocess

    argv = list(train_argv[1:])  # the options without the step name
    if "--summary-file" in argv:  # that file is train's
        i = argv.index("--summary-file")
        del argv[i : i + 2]
    proc = subprocess.run(
        [sys.executable, "-m", "tasks", "mine", *argv],
        stdout=sys.stderr,
        stderr=subprocess.PIPE,
        text=True,
    )
    if proc.returncode != EXIT_OK:
        sys.stderr.write(proc.stderr)
        lines = proc.stderr.strip().splitlines()
        reason = lines[-1].removeprefix("error: ") if lines else f"exit code {proc.returncode}"
        error = StepError(f"the mine step before training failed: {reason}")
        error.exit_code = proc.returncode  # invalid input stays invalid input (no retry)
        raise error


def _evaluate(cfg: RunConfig, run_dir: Path, which: str, *, use_cache: bool) -> dict[str, Any]:
    out = run_dir / "eval" / f"{which}.json"
    if which == "champion":
        from tasks.promotion import evaluate_champion

        result = evaluate_champion(cfg, run_dir, use_cache=use_cache)
        if result.get("absent"):
            return {"step": "evaluate", "model": which, "result": str(out), "absent": True}
    elif out.exists():
        print(f"evaluate: {out} already complete; nothing to redo")
        result = read_json(out)
    else:
        from tasks.evaluate import evaluate_for_run
        from tasks.models import prepared_base_model

        manifest = read_json(prepared(run_dir / "data" / "manifest.json"))
        model_fp = None
        if which == "base":
            model_dir, model_fp = prepared_base_model(manifest, cfg.base_model)
        else:
            model_dir = run_dir / "train" / "model"
            if not (run_dir / "train" / "summary.json").exists():
                raise StepError(f"{model_dir} is missing: run the train step first")
        result = evaluate_for_run(
            cfg,
            run_dir,
            model_dir,
            eval_fingerprint=manifest["fingerprints"]["eval"],
            model_fingerprint=model_fp,
            use_cache=use_cache,
        )
        result["model"] = which
        write_json(out, result)
    ndcg = {d: round(m["ndcg@10"], 4) for d, m in result["metrics"].items()}
    label = f"{which} v{result['version']}" if which == "champion" else which
    print(f"evaluate: {label} ndcg@10 by dim {ndcg}")
    return {
        "step": "evaluate",
        "model": which,
        **({"version": result["version"]} if which == "champion" else {}),
        "result": str(out),
        "cached": result["cached"],
        "model_fingerprint": result["model_fingerprint"],
        "ndcg@10": ndcg,
    }


def _show(run_dir: Path) -> dict[str, Any]:
    from tasks.report import format_table, load_evaluations
    from tasks.tracking import default_tracking_uri, tracking_uri

    evals = load_evaluations(run_dir)
    print(format_table(evals))
    print()
    report_dir = run_dir / "report"
    print(f"chart:  {report_dir / 'ndcg_by_dim.png'}")
    print(f"report: {report_dir / 'report.md'}")
    uri = tracking_uri()
    if uri == default_tracking_uri():
        mlflow_cli = Path(sys.executable).parent / "mlflow"
        print(f"MLflow UI: {mlflow_cli} ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000")
    else:
        from tasks.tracking import redacted_uri

        print(f"MLflow: {redacted_uri(uri)}")
    gate_path = report_dir / "gate.json"
    registered = run_dir / "register" / "result.json"
    if gate_path.exists():
        # register's decision wins: it may refuse a promotion the report allowed (see promotion)
        gate = read_json(registered)["gate"] if registered.exists() else read_json(gate_path)
        verdict = "promoted" if gate["promoted"] else "not promoted"
        print(f"gate:   {verdict}: {gate['reason']}")
    summary: dict[str, Any] = {"run_dir": str(run_dir)}
    if registered.exists():
        summary.update(read_json(registered))
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tasks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="step", required=True)
    for step in STEPS:
        p = sub.add_parser(step, help=f"run the {step} step")
        p.add_argument("--run-dir", required=True, help="the run directory")
        p.add_argument(
            "--summary-file",
            help="also write the summary JSON to this file (e.g. a pod's XCom file)",
        )
        if step == "evaluate":
            p.add_argument("--model", choices=("base", "finetuned", "champion"), required=True)
            p.add_argument("--no-cache", action="store_true", help="ignore cached evaluations")
        add_cli_options(p)
        p.add_argument(
            "--argilla",
            metavar="NAME",
            help="shorthand for --source argilla --argilla-dataset NAME",
        )
    demo = sub.add_parser("demo-data", help="write the demo dataset")
    demo.add_argument("--out", required=True, help="JSON Lines file to write")
    demo.add_argument("--seed", type=int, default=0)
    show = sub.add_parser("show", help="print a finished run's comparison and file locations")
    show.add_argument("--run-dir", required=True)
    return parser


def _dispatch(args: argparse.Namespace) -> dict[str, Any]:
    if args.step == "demo-data":
        from tasks.demo_data import write_demo_dataset

        counts = write_demo_dataset(args.out, seed=args.seed)
        print(
            f"demo-data: wrote {counts['pairs']} pairs over {counts['documents']} documents "
            f"to {args.out}"
        )
        return {"step": "demo-data", "path": str(Path(args.out).resolve()), **counts}
    if args.step == "show":
        return _show(Path(args.run_dir).expanduser().resolve())
    return _run_step(args)


def _handed_over(
    code: int, summary: dict[str, Any] | None = None, error: str | None = None
) -> bool:
    """True when this is a launched training process that passed its outcome on to the launching
    process, which prints the summary line (see tasks.launch)."""
    from tasks.launch import hand_over

    return hand_over(code, json.loads(json.dumps(summary, default=str)), error)


def main(argv: list[str] | None = None, *, exit: Callable[[int], Any] = sys.exit) -> int:
    """Parse ``argv``, run the step, print the summary line and return/exit with its code."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for a re-launch (tasks.launch)
    code = EXIT_OK
    try:
        summary = _dispatch(args)
    except NothingToDo as done:
        summary, code = done.summary, EXIT_NOTHING_TO_DO
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        _handed_over(EXIT_INVALID_INPUT, error=str(exc))
        return exit(EXIT_INVALID_INPUT)
    except StepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        _handed_over(exc.exit_code, error=str(exc))
        return exit(exc.exit_code)
    except Exception as exc:  # unexpected: keep the traceback, end with a one-line reason
        traceback.print_exc()
        reason = str(exc).splitlines()[0] if str(exc) else ""
        error = f"{args.step} failed: {type(exc).__name__}: {reason}"
        print(f"error: {error}", file=sys.stderr)
        _handed_over(EXIT_FAILED, error=error)
        return exit(EXIT_FAILED)
    sys.stdout.flush()
    if _handed_over(code, summary):
        # a launched training process: the launching process prints the summary line
        gc.freeze()
        return exit(code)
    print(json.dumps(summary, default=str), flush=True)
    summary_file = getattr(args, "summary_file", None)
    if summary_file:
        write_json(Path(summary_file), json.loads(json.dumps(summary, default=str)))
    # Interpreter shutdown would walk every object torch & co. created (1.5 s per step process
    # on 2 cores); frozen objects are left alone. Files are closed and flushed as usual.
    gc.freeze()
    return exit(code)
