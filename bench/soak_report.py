"""bench/soak.md from bench_soak.py's result (the same figures as results/soak.json)."""

from __future__ import annotations

from typing import Any


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f} %"


def _reasons(d: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(d.items())) or "-"


def _row(name: str, f: object, c: object) -> str:
    return f"| {name} | {f} | {c} |"


def summary_table(r: dict[str, Any]) -> list[str]:
    f, c = r["runs"]["faults"], r["runs"]["clean"]
    fc = f["faults"]
    lines = [
        "| | with faults | clean |",
        "|---|---|---|",
        _row("final test accuracy", _pct(f["final_test_accuracy"]), _pct(c["final_test_accuracy"])),
        _row("final macro F1", f"{f['final_macro_f1']:.4f}", f"{c['final_macro_f1']:.4f}"),
        _row("rounds closed / skipped", f"{f['rounds_closed']} / {f['rounds_skipped']}",
             f"{c['rounds_closed']} / {c['rounds_skipped']}"),
        _row("mean accepted updates per round", f["mean_answered"], c["mean_answered"]),
        _row("rounds that waited out the deadline", f["rounds_at_deadline"],
             c["rounds_at_deadline"]),
        _row("slowest round", f"{f['slowest_round_s']} s", f"{c['slowest_round_s']} s"),
        _row("wall time (mean per round)", f"{f['wall_s']} s ({f['mean_round_s']} s)",
             f"{c['wall_s']} s ({c['mean_round_s']} s)"),
        _row("node SIGKILLs (restarted)", fc["node_kills"], "-"),
        _row("node SIGSTOPs (resumed)", fc["node_stops"], "-"),
        _row("broker SIGKILLs (restarted, same port)", fc["broker_kills"], "-"),
        _row("faults skipped (target already down) / not reached",
             f"{fc['skipped_target_busy']} / {fc['not_reached']}", "-"),
        _row("coordinator reconnections", f["coordinator_reconnects"],
             c["coordinator_reconnects"]),
        _row("node processes started (boots seen in logs)",
             f"{f['node_boots']['started']} ({f['node_boots']['seen_in_logs']})",
             f"{c['node_boots']['started']} ({c['node_boots']['seen_in_logs']})"),
    ]
    return lines


def accounting_table(r: dict[str, Any]) -> list[str]:
    f, c = r["runs"]["faults"], r["runs"]["clean"]
    fa, ca = f["accounting"], c["accounting"]
    fm, cm = f["metrics_totals"], c["metrics_totals"]
    return [
        "| | with faults | clean |",
        "|---|---|---|",
        _row("updates sent per the node logs (trained + re-sent)", _sends(fa), _sends(ca)),
        _row("(node, round) pairs sent", fa["pairs_sent"], ca["pairs_sent"]),
        _row("... accepted", fa["pair_status"].get("accepted", 0),
             ca["pair_status"].get("accepted", 0)),
        _row("... late only", fa["pair_status"].get("late", 0), ca["pair_status"].get("late", 0)),
        _row("... other outcome only", _reasons(_others(fa["pair_status"])),
             _reasons(_others(ca["pair_status"]))),
        _row("... lost, explained", _reasons(_lost(fa["pair_status"], True)),
             _reasons(_lost(ca["pair_status"], True))),
        _row("... **lost, unexplained**", len(fa["unexplained"]), len(ca["unexplained"])),
        _row("updates received by the coordinator", sum(fa["receipts"].values()),
             sum(ca["receipts"].values())),
        _row("... copies beyond the logged sends (re-sent on reconnect, unlogged)",
             fa["extra_copies_received"], ca["extra_copies_received"]),
        _row("... after the last round's record", fa["receipts_after_last_round"],
             ca["receipts_after_last_round"]),
        _row("... received, never in a node log", len(fa["received_but_never_logged"]),
             len(ca["received_but_never_logged"])),
        _row("logged copies of received pairs that never arrived, by cause",
             _reasons(fa["missing_copies_of_received_pairs"]),
             _reasons(ca["missing_copies_of_received_pairs"])),
        _row("metrics.jsonl: answered (accepted)", fm["answered"], cm["answered"]),
        _row("metrics.jsonl: late", fm["late"], cm["late"]),
        _row("metrics.jsonl: dropped (reasons)", f"{fm['dropped']} ({_reasons(fm['dropped_reasons'])})",
             f"{cm['dropped']} ({_reasons(cm['dropped_reasons'])})"),
        _row("metrics.jsonl: rejected (reasons)",
             f"{fm['rejected']} ({_reasons(fm['rejected_reasons'])})",
             f"{cm['rejected']} ({_reasons(cm['rejected_reasons'])})"),
        _row("metrics.jsonl equals the intake's receipts", f["metrics_match_receipts"],
             c["metrics_match_receipts"]),
    ]


def _sends(a: dict[str, Any]) -> str:
    return f"{a['logged_sends'].get('trained', 0)} + {a['logged_sends'].get('resent', 0)}"


def _others(status: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in status.items()
            if k not in ("accepted", "late") and not k.startswith("lost:")}


def _lost(status: dict[str, int], explained: bool) -> dict[str, int]:
    return {k[5:]: v for k, v in status.items() if k.startswith("lost:")
            and (k != "lost:unexplained") == explained}


def findings(r: dict[str, Any]) -> list[str]:
    out = []
    for label, run in r["runs"].items():
        a = run["accounting"]
        for item in a["unexplained"]:
            out.append(f"- {label}: update of {item['node']} for round id {item['round_id']} "
                       f"never reached the coordinator: sends {item['sends']}, faults nearby "
                       f"{item['faults_nearby']}")
        for pair in a["accepted_twice"]:
            out.append(f"- {label}: {pair} accepted twice")
        for pair in a["received_but_never_logged"]:
            out.append(f"- {label}: {pair} received but in no node log")
        for s in run["skipped"]:
            out.append(f"- {label}: round {s['round']} skipped: {s['reason']}")
        unexplained_copies = a["missing_copies_of_received_pairs"].get("unexplained", 0)
        if unexplained_copies:
            out.append(f"- {label}: {unexplained_copies} logged copies of received updates "
                       "never arrived, with no fault near their send")
        if not run["metrics_match_receipts"]:
            out.append(f"- {label}: metrics.jsonl totals {run['metrics_totals']} differ from "
                       f"the intake's receipts {run['receipts_before_last_record']}")
    return out or ["- none: every round closed and every update sent is accounted for."]


def markdown(r: dict[str, Any]) -> str:
    s = r["settings"]
    verdict = "within" if r["within_1_point"] else "**not** within"
    return "\n".join([
        "# Soak benchmark",
        "",
        (f"Recorded {r['date']} by `python bench/bench_soak.py --rounds {s['rounds']} --nodes "
         f"{s['nodes']} --seed {s['seed']} --min-clients {s['min_clients']} --node-fault-every "
         f"{s['node_fault_every']:g} --broker-fault-every {s['broker_fault_every']:g}"
         f"{'' if r['name'] == 'soak' else ' --name ' + r['name']}` on "
         f"{r['machine']}; total wall time {r['total_wall_s']} s."),
        "",
        (f"{s['nodes']} native firmware nodes (`.pio/build/native/program`) on an iid "
         f"{r['task']} partition ({s['max_samples']} samples each), signed frames (provisioned "
         f"keyring), a private mosquitto without persistence, the round engine in-process: "
         f"FedAvg, {s['rounds']} rounds, every eligible node selected, quorum {s['min_clients']}, "
         f"round timeout {s['round_timeout']:g} s, {s['epochs']} epochs, lr {s['lr']:g}, "
         f"{s['uplink_bits']}-bit uplink, seed {s['seed']}. The fault injector "
         f"(random.Random({s['seed']}), plan drawn up front) hits each round with a node fault "
         f"with probability 1/{s['node_fault_every']:g} (SIGKILL and restart after "
         f"{s['node_pause'][0]:g}-{s['node_pause'][1]:g} s, or SIGSTOP for "
         f"{s['stop_pause'][0]:g}-{s['stop_pause'][1]:g} s, half each) and a broker SIGKILL "
         f"with probability 1/{s['broker_fault_every']:g} (restart on the same port after "
         f"{s['broker_pause'][0]:g}-{s['broker_pause'][1]:g} s), each up to "
         f"{s['max_delay']:g} s into its round. The clean run has the same seed, partition and "
         "settings and no faults. The seed fixes the plan, not the timing: which faults land "
         "while their target is already down (skipped) or after the last round (not reached), "
         "and so the counts below, vary from run to run; the clean run repeats exactly."),
        "",
        *summary_table(r),
        "",
        (f"Final accuracy gap: {r['accuracy_gap_points']} points, {verdict} the 1-point target."),
        "",
        "## Every update accounted for",
        "",
        ("Sends come from the node logs (\"round N: ... B up\" per trained round, \"sending its "
         "update again\" per re-send); receipts from the coordinator's intake, every UPDATE it "
         "classified, matched per (node, round id). A pair counts once, by its best outcome. "
         "Lost pairs are explained when the broker was killed within 1 s of the send, when the "
         "node was killed within 1 s after it, or when it was sent after the last round; the "
         "metrics.jsonl totals must equal the receipts before the last record."),
        "",
        *accounting_table(r),
        "",
        ("Where the refusals come from. *duplicate*: a node re-sends its UPDATE when its "
         "round's GLOBAL comes back after a broker restart, and the copy that reached the "
         "coordinator before the kill was already accepted. *unselected*: a node killed before "
         "a round started and restarted during it finds the retained GLOBAL, which names no "
         "nodes when every eligible node was selected, so it trains and its update is dropped. "
         "*late*: an update (or its re-send) that arrived after its round closed at quorum. "
         "A copy of an update still unacknowledged when a connection dropped is sent again on "
         "reconnect without a log line; such copies would show as received beyond the logged "
         "sends."),
        "",
        "## Findings",
        "",
        *findings(r),
        "",
        (f"Raw figures, per-round skips, the faults fired and any lost update's evidence: "
         f"`results/{r['name']}.json`."),
        "",
    ])
