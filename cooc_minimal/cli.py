"""The course's commands: ``cooc-train`` (also ``python -m cooc_minimal.train``) and
``cooc-eval`` (also ``python -m cooc_minimal.evaluate``).

Every command runs its work through :func:`run_command`, so that bad input (an unknown
config key, a missing dataset, a run folder that does not fit or is in use, an unreadable
image, a full disk, more memory than there is) ends with one sentence on stderr and exit
status 2, a diverged run with exit status 1, and never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from cooc_minimal.bags import SPACES
from cooc_minimal.config import (
    RUNTIME_KEYS,
    Config,
    ConfigError,
    describe_keys,
    known_configs,
    load_config,
    write_text_atomically,
)
from cooc_minimal.evaluate import evaluate_checkpoint
from cooc_minimal.runs import CONFIG, RunFolderError, TrainingDiverged, TrainingStopped
from cooc_minimal.train import train

__all__ = ["BAD_INPUT", "build_eval_parser", "build_train_parser", "check_writable_file",
           "eval_main", "format_rows", "parse_counts", "run_command", "speaks", "train_main"]

BAD_INPUT = (ValueError, FileNotFoundError, ConfigError, RunFolderError)


def speaks() -> bool:
    """Whether this process prints: under ``torchrun`` only rank 0, so a sentence shows once."""
    return int(os.environ.get("RANK", "0")) == 0


def _os_sentence(error: OSError) -> str:
    """An OSError the library did not word itself, as one sentence naming the file."""
    what = error.strerror or str(error) or type(error).__name__
    where = f" ({error.filename})" if error.filename else ""
    return f"{what}{where}: check that path, its permissions and the free disk space."


def _memory_sentence(error: BaseException) -> str:
    first = str(error).strip().splitlines()[0] if str(error).strip() else "out of memory"
    return (f"There is not enough memory for this run ({first[:200]}): lower batch_size, "
            f"n_patches or the model's size (evaluation: --patches, --limit, --batch-size).")


def run_command(prog: str, work: Callable[[], int]) -> int:
    """``work()``'s exit status; bad input (:data:`BAD_INPUT`, and an OSError or a failed
    allocation the library did not word) is one sentence on stderr and status 2, a
    :class:`TrainingDiverged` status 1, a :class:`TrainingStopped` 128 + the signal's number."""
    try:
        return work()
    except TrainingDiverged as error:
        status = 1
        message = str(error)
    except TrainingStopped as error:  # the shell's convention: 128 + the signal's number
        status = 128 + getattr(signal.Signals, error.reason, signal.SIGTERM).value
        message = str(error)
    except BAD_INPUT as error:
        status = 2
        message = str(error)
    except OSError as error:
        status, message = 2, _os_sentence(error)
    except (MemoryError, torch.OutOfMemoryError) as error:
        status, message = 2, _memory_sentence(error)
    except RuntimeError as error:  # a CPU allocation that failed: "can't allocate memory"
        if "allocate" not in str(error):
            raise
        status, message = 2, _memory_sentence(error)
    message = " ".join(message.split())  # one line, whatever the message held
    if speaks():
        print(f"{prog}: {message}", file=sys.stderr)
    return status


def build_train_parser() -> argparse.ArgumentParser:
    """The options of ``cooc-train``; ``--help`` also lists every config key."""
    keys = "\n".join(f"  {k:<17} {h} (default {d})" for k, d, h in describe_keys())
    parser = argparse.ArgumentParser(
        prog="python -m cooc_minimal.train", allow_abbrev=False,
        description="Train a joint-embedding model on fixed-scale patches (BagSSL, appendix C "
                    "settings). Single GPU or CPU: python -m cooc_minimal.train --config "
                    "cifar10_vicreg --data-root ~/data --out runs/c10. Several GPUs: torchrun "
                    "--nproc_per_node=4 -m cooc_minimal.train (same options).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"configs shipped: {', '.join(known_configs())}\n\nconfig keys (--set KEY=VALUE):\n"
               f"{keys}")
    parser.add_argument("--config", metavar="NAME_OR_PATH",
                        help="a shipped config name (e.g. smoke, cifar10_vicreg) or a .toml "
                             "file; optional with --resume (the run's saved config is used)")
    parser.add_argument("--data-root", metavar="DIR",
                        help="folder holding the dataset (sets data_root; default $COOC_DATA "
                             "or ~/data; unused by the toy world)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="run folder: config.toml, metrics.csv and last.pt are written here")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, repeatable: --set epochs=10 --set "
                             "loss_coeffs.lam=30 (keys listed below)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out exactly where it stopped; only "
                             "runtime keys may be changed: "
                             + ", ".join(sorted(RUNTIME_KEYS - {"name"})))
    parser.add_argument("--stop-after-epochs", type=int, metavar="K",
                        help="end cleanly after K epochs of this invocation, with a checkpoint, "
                             "as a preemption would; continue later with --resume")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _train_config(args: argparse.Namespace) -> Config:
    """The config the options ask for: --config with --set, else a resumed run's own."""
    overrides = list(args.set)
    if args.data_root:
        overrides.append(f"data_root={args.data_root}")
    if args.config:
        return load_config(args.config, overrides)
    saved = Path(args.out).expanduser() / CONFIG
    if args.resume and saved.exists():
        return load_config(saved, overrides)
    if args.resume:
        raise RunFolderError(f"There is nothing to resume in {args.out}: it has no {CONFIG}; "
                             f"start the run with --config NAME.")
    raise ConfigError("--config is required to start a run: pass a shipped name such as "
                      "--config smoke, or a path to a .toml file.")


def train_main(argv: list[str] | None = None) -> int:
    """The ``cooc-train`` command: train, then say how the run ended. Returns the exit status."""
    args = build_train_parser().parse_args(argv)

    def work() -> int:
        if args.stop_after_epochs is not None and args.stop_after_epochs < 1:
            raise ValueError(f"--stop-after-epochs must be a positive integer, got "
                             f"{args.stop_after_epochs}.")
        summary = train(_train_config(args), args.out, resume=args.resume,
                        stop_after_epochs=args.stop_after_epochs,
                        progress=not args.no_progress)
        if speaks():
            done = "finished" if summary["finished"] else (
                f"stopped ({summary['stopped']}) at step {summary['steps']} of "
                f"{summary['total_steps']}, checkpoint written; continue with --resume")
            print(f"cooc-train: {summary['name']} {done}; {summary['checkpoint']}")
        return 0

    return run_command("cooc-train", work)


# ------------------------------------------------------------------------- cooc-eval

def parse_counts(text: str, option: str = "--patches") -> list[int]:
    """``"1,4,16"`` -> [1, 4, 16]; anything else is one sentence naming ``option``."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise ValueError(f"{option} must be positive integers separated by commas, such as "
                         f"1,4,16,64, got {text!r}.")
    return counts


#: the columns of each kind of row, in the order they are printed
COLUMNS = {"accuracy": ("space", "n_patches", "patch_size", "probe_acc", "knn_acc"),
           "convergence": ("space", "n_patches", "patch_size", "images", "same", "different",
                           "gap")}
CONVERGENCE_TITLE = ("multi-scale convergence: centred cosine of each bag with its own "
                     "image's embedding (same) and with another image's (different)")


def _table(rows: list[dict], header: tuple[str, ...]) -> str:
    cells = [header] + [tuple(f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c])
                              for c in header) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(header)))
                     for c in cells)


def format_rows(rows: list[dict]) -> str:
    """The rows as aligned text tables: accuracy, then convergence (each when present)."""
    tables = []
    for metric, header in COLUMNS.items():
        chosen = [r for r in rows if r.get("metric", "accuracy") == metric]
        if chosen:
            title = CONVERGENCE_TITLE + "\n" if metric == "convergence" else ""
            tables.append(title + _table(chosen, header))
    return "\n\n".join(tables)


def check_writable_file(path: Path, option: str) -> None:
    """Refuse, in one sentence, a file that cannot be written: a folder, a path below a file,
    a folder without write permission. Missing parent folders are made; nothing else is
    left behind."""
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder: pass a file path, such as "
                         f"{path / 'results.json'}.")
    below = next((p for p in path.parents if p.exists()), None)
    if below is not None and not below.is_dir():
        raise ValueError(f"{option} {path} lies below {below}, which is a file, not a folder: "
                         f"pass a path inside a folder.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        with open(path, "a"):
            pass
        if not existed:
            path.unlink()
    except OSError as error:
        raise ValueError(f"{option} {path} cannot be written ({error.strerror or error}): "
                         f"pass a path in a folder you may write to.") from None


def build_eval_parser() -> argparse.ArgumentParser:
    """The options of ``cooc-eval``."""
    parser = argparse.ArgumentParser(
        prog="python -m cooc_minimal.evaluate", allow_abbrev=False,
        description="Linear probe and weighted kNN on bag embeddings: each image is the mean "
                    "embedding of n fixed-scale patches; optionally the multi-scale "
                    "convergence of the bags to the whole image. Example: python -m "
                    "cooc_minimal.evaluate --checkpoint runs/c10/last.pt --dataset cifar10 "
                    "--data-root ~/data --patches 1,4,16,64 --convergence 1,4,16,64 --json "
                    "results.json")
    parser.add_argument("--checkpoint", required=True, metavar="PATH",
                        help="a last.pt written by cooc_minimal.train, or its run folder")
    parser.add_argument("--dataset", help="dataset to evaluate on (default: the checkpoint's)")
    parser.add_argument("--data-root", metavar="DIR",
                        help="folder holding the dataset (default: the checkpoint's data_root, "
                             "else $COOC_DATA or ~/data)")
    parser.add_argument("--patches", default="1,4,16,64", metavar="N,N,...",
                        help="numbers of patches averaged per image for the probe and the kNN "
                             "(default 1,4,16,64); one draw of the largest, nested; 'none' "
                             "for no probe nor kNN (with --convergence)")
    parser.add_argument("--convergence", metavar="N,N,...",
                        help="also measure, for each n, the centred cosine of the bag of n "
                             "patches with the whole image's embedding (same) and with "
                             "another image's (different), on the first --limit (default "
                             "1000) test images")
    parser.add_argument("--untrained", action="store_true",
                        help="evaluate the checkpoint's architecture at its initialisation "
                             "(the run's seed), not its weights: the control")
    parser.add_argument("--patch-size", type=int, metavar="S",
                        help="patch side in pixels (default: the checkpoint's "
                             "eval_patch_size, else its patch_size)")
    parser.add_argument("--out-size", type=int, metavar="S",
                        help="resize patches to this side (default: the checkpoint's "
                             "eval_out_size, else its patch_out)")
    parser.add_argument("--space", default="embedding",
                        choices=("embedding", "projection", "both"),
                        help="embedding (backbone output, BagSSL's choice), projection, or both")
    parser.add_argument("--grid", action="store_true",
                        help="distinct patches of the grid of step --patch-size, not random ones")
    parser.add_argument("--k", type=int, default=20,
                        help="neighbours of the kNN (20, solo-learn's; InstDisc's code and "
                             "lightly use 200)")
    parser.add_argument("--temperature", type=float, default=0.07,
                        help="kNN weight exp(cos / T) (0.07, solo-learn's; lightly uses 0.1)")
    parser.add_argument("--limit", type=int, metavar="N",
                        help="use only the first N images of each split (a quick check); "
                             "the convergence uses the first N test images (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the patch positions (0)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp16", "fp32"),
                        help="auto: bf16 autocast on a GPU with bf16 units (sm_80+), else "
                             "fp32; fp16 autocast is the faster option on a T4 or V100")
    parser.add_argument("--batch-size", type=int, metavar="P",
                        help="patches per forward pass (default 1024 on CPU, 8192 on GPU)")
    parser.add_argument("--num-workers", type=int, default=0,
                        help="DataLoader workers decoding images (0)")
    parser.add_argument("--json", metavar="PATH", help="also write the rows to this JSON file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


#: Python arguments that the library's sentences name, as a cooc-eval user spells them
_EVAL_WORDS = {"use random patches (grid=False)": "drop --grid to use random patches"}


def _in_option_words(message: str) -> str:
    """``message`` with cooc-eval's option names for the Python arguments it names: the
    library words its sentences for Python callers, where those names are right."""
    for python, option in _EVAL_WORDS.items():
        message = message.replace(python, option)
    return message


def eval_main(argv: list[str] | None = None) -> int:
    """The ``cooc-eval`` command: evaluate, print the table, maybe write JSON. Exit status."""
    args = build_eval_parser().parse_args(argv)

    def work() -> int:
        patches = [] if args.patches.strip().lower() == "none" else parse_counts(args.patches)
        convergence = parse_counts(args.convergence, "--convergence") \
            if args.convergence is not None else []
        if args.json:  # before the evaluation, so that its results are never lost
            check_writable_file(Path(args.json).expanduser(), "--json")
        try:
            rows = evaluate_checkpoint(
                args.checkpoint, dataset=args.dataset, data_root=args.data_root,
                patches=patches, convergence=convergence, untrained=args.untrained,
                patch_size=args.patch_size,
                out_size=args.out_size, spaces=SPACES if args.space == "both" else (args.space,),
                grid=args.grid, k=args.k, temperature=args.temperature, limit=args.limit,
                seed=args.seed, device=args.device, precision=args.precision,
                batch_size=args.batch_size, num_workers=args.num_workers,
                progress=not args.no_progress)
        except ValueError as error:
            message = _in_option_words(str(error))
            if message == str(error):
                raise
            raise ValueError(message) from None
        print(format_rows(rows))
        if args.json:
            path = Path(args.json).expanduser()
            write_text_atomically(path, json.dumps(rows, indent=1) + "\n")
            print(f"wrote {path}")
        return 0

    return run_command("cooc-eval", work)
