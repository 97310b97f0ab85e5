"""What the report judges: the targets, the ratios of ours to bare beside them, and the notes."""

from __future__ import annotations

from typing import Any

from run_bench.stats import ratio

TARGETS = {
    "latency_p50_ratio_max": 1.3,
    "first_event_p50_over_bare_latency_p50_max": 1.0,
    "throughput_ratio_min": 0.7,
    "worker_cpu_ratio_max": 1.5,
    "evicted_over_cached_max": 3.0,
    "cancel_p95_max_s": 1.0,
}

NOTES = [
    "ours and bare share one process, one dev server and 2 CPUs with whatever else runs "
    "on the machine: compare the two sides, and see load_before/load_after for noise",
    "the dev server runs as `asm dev` runs it (worker.dev_server.DEV_SERVER_TUNING: "
    "history.transferProcessorMaxPollRPS=1000; the stock 20/s makes every task dispatch "
    "wait up to ~50 ms, which dominates both sides and hides our own overhead)",
]


#: The cancel phase's p95s judged against ``cancel_p95_max_s``: name in the report, its summary.
CANCEL_CHECKS = {
    "cancel_run_p95_s": "cancel_run_returned",
    "cancel_to_provider_stopped_p95_s": "cancel_to_last_message_streamed",
    "late_cancel_run_p95_s": "late_cancel_run_returned",
    "late_cancel_to_provider_stopped_p95_s": "late_cancel_to_last_message_streamed",
}


def p95_s(summary: dict[str, Any] | None) -> float | None:
    """A summary's p95 in seconds (None when the phase did not run)."""
    p95 = (summary or {}).get("p95_ms")
    return None if p95 is None else round(p95 / 1000, 3)


def ratios(out: dict[str, Any]) -> dict[str, Any]:
    """Each ratio beside its target, with ``met`` (None when its phase did not run)."""
    lat = out.get("latency", {})
    fe = out.get("first_event", {})
    tp = out.get("throughput", {})
    cn = out.get("cancel", {})
    wc = out.get("worker_cpu", {})
    ev = out.get("evicted", {})
    ours_p50 = (lat.get("ours") or {}).get("p50_ms")
    bare_p50 = (lat.get("bare_parent") or lat.get("bare") or {}).get("p50_ms")
    session_p50 = (lat.get("bare_session") or {}).get("p50_ms")
    first_p50 = (fe.get("ours_submit_to_first_message_streamed") or {}).get("p50_ms")
    # Bare latency sampled alongside, in alternating blocks (the phase's own, when it has one).
    fe_session_p50 = (fe.get("bare_session_latency_alternating") or {}).get("p50_ms")
    lat_r = ratio(ours_p50, bare_p50)
    first_r = ratio(first_p50, bare_p50)
    tp_r = ratio(tp.get("ours_runs_per_s"), tp.get("bare_runs_per_s"))
    evicted_1000 = (ev.get("n_1000") or {}).get("ours_evicted_over_cached")

    def check(value: float | None, target: float, le: bool) -> dict[str, Any]:
        met = None if value is None else (value <= target if le else value >= target)
        return {"value": value, "target": ("<= " if le else ">= ") + f"{target:g}", "met": met}

    return {
        # Against the session-shaped bare program (the fair baseline): the targets.
        "latency_p50_ours_over_bare_session": check(
            ratio(ours_p50, session_p50), TARGETS["latency_p50_ratio_max"], True
        ),
        "first_event_p50_over_bare_session_latency_p50": check(
            ratio(first_p50, fe_session_p50 or session_p50),
            TARGETS["first_event_p50_over_bare_latency_p50_max"],
            True,
        ),
        "throughput_ours_over_bare_session": check(
            ratio(tp.get("ours_runs_per_s"), tp.get("bare_session_runs_per_s")),
            TARGETS["throughput_ratio_min"],
            False,
        ),
        "worker_cpu_per_run_ours_over_bare_session": check(
            wc.get("ours_over_bare_session"), TARGETS["worker_cpu_ratio_max"], True
        ),
        "evicted_run_over_cached_run_n_1000": check(
            evicted_1000, TARGETS["evicted_over_cached_max"], True
        ),
        # Against the new-parent-per-run program (the first baseline), for comparison.
        "latency_p50_ours_over_bare": check(lat_r, TARGETS["latency_p50_ratio_max"], True),
        "first_event_p50_over_bare_latency_p50": check(
            first_r, TARGETS["first_event_p50_over_bare_latency_p50_max"], True
        ),
        "throughput_ours_over_bare": check(tp_r, TARGETS["throughput_ratio_min"], False),
        **{
            name: check(p95_s(cn.get(key)), TARGETS["cancel_p95_max_s"], True)
            for name, key in CANCEL_CHECKS.items()
        },
    }
