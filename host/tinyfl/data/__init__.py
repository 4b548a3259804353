"""Datasets: the one npz form, CSV import, splits, partition schemes and the packaged datasets.

The names below are the packaged datasets (tinyfl.data.packaged) and the model folder a command
uses when none is given; they live here, without imports, so the command line can offer them
without loading numpy.
"""

PACKAGED_NAMES = ("har", "nsl-kdd", "watch")
MODEL_TASKS = ("har", "nsl-kdd")  # `--task NAME`: models/NAME with its packaged data
DEFAULT_MODEL = "har"
