"""Run reports: reference baselines, plots and a self-contained report.html of a run folder.

    from tinyfl.report import compute_baselines, plan_node_data, write_report

    nodes = plan_node_data(fleet_data, load_artifacts(model))  # what each emulated node trains on
    refs = compute_baselines(load_task("har"), nodes, config)  # central, local-only, float32 FedAvg
    write_report(Path("runs/lab"), refs)                       # PNGs + report.html (+ baselines.json)

Modules: `baselines` (references trained with the node's own SGD on the nodes' data, and the
simulated federated run), `plots` (PNG bytes), `html` (the page), `writer` (the run folder).
"""

from tinyfl.report.baselines import (
    BASELINES_NAME,
    NODE_CACHE_CAPACITY,
    Baseline,
    Baselines,
    FederatedCurve,
    LocalOnly,
    NodeData,
    central_epochs,
    central_head,
    compute_baselines,
    load_baselines,
    local_only,
    plan_node_data,
    save_baselines,
    simulated_federated,
    simulated_federated_async,
    task_node_data,
)
from tinyfl.report.html import RunSummary, render_html, summarize
from tinyfl.report.plots import render_plots
from tinyfl.report.writer import REPORT_NAME, write_report

__all__ = [
    "BASELINES_NAME",
    "NODE_CACHE_CAPACITY",
    "REPORT_NAME",
    "Baseline",
    "Baselines",
    "FederatedCurve",
    "LocalOnly",
    "NodeData",
    "RunSummary",
    "central_epochs",
    "central_head",
    "compute_baselines",
    "load_baselines",
    "local_only",
    "plan_node_data",
    "render_html",
    "render_plots",
    "save_baselines",
    "simulated_federated",
    "simulated_federated_async",
    "summarize",
    "task_node_data",
    "write_report",
]
