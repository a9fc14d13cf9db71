"""The read benchmark's results and their markdown rendering (tables, ratios, targets)."""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, field

from bench.harness import CpuSplit, LoadResult, Timing

VARIANTS = {
    "a": "(a) lazy ORM, N+1",
    "b": "(b) selectinload + pydantic",
    "c": "(c) JSON aggregation, 1 stmt, write model",
    "d": "**(d) read model: this endpoint**",
    "e": "(e) floor: constant body, same auth + RLS set-up (1 round trip)",
    "e0": "(e0) floor: constant body, auth only, no database",
    "a0": "(a0) lazy ORM, N+1, **no auth, no RLS**",
    "b0": "(b0) selectinload + pydantic, **no auth, no RLS**",
    "c0": "(c0) JSON aggregation, **no auth, no RLS**",
    "f0": "(f0) floor: constant body, **no auth, no database**",
}
# (path, compared to, minimum ratio of (d) to it, or the maximum ratio of it to (d) for floors)
TARGETS = [
    ("list", "b", 80.0, "≥ 80× (b)"),
    ("list", "c", 6.0, "≥ 6× (c)"),
    ("list", "e", 1 / 4, "within 4× of (e)"),
    ("one", "b", 15.0, "≥ 15× (b)"),
    ("one", "c", 1.3, "≥ 1.3× (c)"),
    ("one", "e", 1 / 2.5, "within 2.5× of (e)"),
    ("list", "b0", 80.0, "≥ 80× (b0), no-auth anchor"),
    ("list", "c0", 6.0, "≥ 6× (c0), no-auth anchor"),
    ("list", "f0", 1 / 4, "within 4× of (f0), no-auth floor"),
    ("one", "b0", 15.0, "≥ 15× (b0), no-auth anchor"),
    ("one", "c0", 1.3, "≥ 1.3× (c0), no-auth anchor"),
    ("one", "f0", 1 / 2.5, "within 2.5× of (f0), no-auth floor"),
]
LIST_P99_MS = 40.0


@dataclass
class Row:
    """Everything measured for one variant of one path."""

    inproc: Timing | None = None
    http: LoadResult | None = None
    http_cpu: CpuSplit | None = None
    statements: float = math.nan
    round_trips: float = math.nan
    http_statements: float = math.nan
    size: int = 0


@dataclass
class Report:
    """The run's results."""

    rows: dict[tuple[str, str], Row] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    plumbing: list[str] = field(default_factory=list)
    read_cache_mb: int | None = None
    """`READ_CACHE_MB` as (d)'s app resolved it (environment or `.env`)."""
    pool: tuple[int, int] | None = None
    """`DB_POOL_SIZE`, `DB_POOL_OVERFLOW` as the bench app resolved them (every variant shares its engines)."""

    def row(self, kind: str, variant: str) -> Row:
        """The row of one variant (created on first use)."""
        return self.rows.setdefault((kind, variant), Row())


def _rps(row: Row, mode: str) -> float:
    """Throughput of a row: HTTP or in-process req/s, or for `cpu` the inverse of its total CPU per request."""
    if mode == "http":
        return row.http.rps if row.http else math.nan
    if mode == "cpu":
        if not row.inproc:
            return math.nan
        app, db = row.inproc.cpu_ms
        return 1000 / (app + db) if app + db > 0 else math.nan
    return row.inproc.rps if row.inproc else math.nan


def _ratio(x: float, y: float) -> str:
    return "–" if math.isnan(x) or math.isnan(y) or y == 0 else f"{x / y:.2f}×"


def _num(value: float) -> str:
    return "–" if math.isnan(value) else (f"{value:,.0f}" if value >= 10 else f"{value:.1f}")


def _table(report: Report, kind: str) -> list[str]:
    lines = [
        "| variant | body KiB | statements/req (all sent) | round trips/req | in-process req/s (p50 / p99 ms) | app + PG CPU ms/req"
        " | HTTP req/s at 16 conn (p50 / p99 ms) | HTTP CPU ms/req: API + PG | (d) vs this row: HTTP / in-proc / CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    d = report.row(kind, "d")
    for variant, label in VARIANTS.items():
        row = report.row(kind, variant)
        ip, hp = row.inproc, row.http
        cpu = ip.cpu_ms if ip else (math.nan, math.nan)
        cells = [
            label,
            f"{row.size / 1024:.1f}" if row.size else "–",
            f"{row.statements:g}",
            f"{row.round_trips:g}",
            f"{_num(ip.rps)} ({ip.pct(0.5):.2f} / {ip.pct(0.99):.2f})" if ip else "–",
            f"{cpu[0]:.2f} + {cpu[1]:.2f}",
            f"{_num(hp.rps)} ({hp.p50_ms:.1f} / {hp.p99_ms:.1f})" if hp and hp.requests else "–",
            f"{row.http_cpu.api_ms:.2f} + {row.http_cpu.db_ms:.2f}" if row.http_cpu else "–",
            "1×" if variant == "d" else " / ".join(_ratio(_rps(d, m), _rps(row, m)) for m in ("http", "inproc", "cpu")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _met(value: float, minimum: float) -> str:
    return "–" if math.isnan(value) else ("yes" if value >= minimum else "**no**")


def _verdicts(report: Report) -> list[str]:
    lines = [
        "| target | HTTP, 16 conn | met | in-process | met | CPU per request | met |",
        "|---|---:|---|---:|---|---:|---|",
    ]
    for kind, other, minimum, label in TARGETS:
        d, o = report.row(kind, "d"), report.row(kind, other)
        name = "list of 50" if kind == "list" else "single trip"
        cells = [f"{name}: {label}"]
        for mode in ("http", "inproc", "cpu"):
            ratio = _rps(d, mode) / _rps(o, mode) if _rps(o, mode) else math.nan
            floor = other in {"e", "f0"}
            cells += [f"{ratio:.2f}× of it" if not floor else f"{1 / ratio:.2f}× slower", _met(ratio, minimum)]
        lines.append("| " + " | ".join(cells) + " |")
    d_list = report.row("list", "d")
    if d_list.http:
        p99 = d_list.http.p99_ms
        lines.append(
            f"| list of 50: p99 ≤ {LIST_P99_MS:g} ms at 16 conn | {p99:.1f} ms | {_met(-p99, -LIST_P99_MS)} | | | | |"
        )
    for kind in ("list", "one"):
        row = report.row(kind, "d")
        name = "list of 50" if kind == "list" else "single trip"
        lines.append(
            f"| {name}: 1 data statement per request | {row.http_statements:g} | {_met(-abs(row.http_statements - 1), 0)}"
            f" | {row.statements:g} | {_met(-abs(row.statements - 1), 0)} | | |"
        )
    return lines


def _held(size: int | None) -> str:
    """The document cache of (d) in this run."""
    if size == 0:
        return "(d) keeps no documents (`READ_CACHE_MB=0`): PostgreSQL sends every one."
    return f"(d) keeps the documents it served (`READ_CACHE_MB={size}`): PostgreSQL leaves out those still current."


def pool_sentence(pool: tuple[int, int] | None) -> str:
    """The bench app's pool, shared by every variant (the read and the write bench's reports)."""
    if pool is None:
        return ""
    return f" Every variant shares the app's pool: `DB_POOL_SIZE={pool[0]}`, `DB_POOL_OVERFLOW={pool[1]}`."


def render(report: Report, args: argparse.Namespace, *, command: str, idle: tuple[float, float], seconds: float) -> str:
    """The whole report as markdown."""
    busy = "QUIET" if min(idle) > 0.85 else "BUSY (other work on the CPU; rerun on a quiet machine)"
    out = [
        f"## Read benchmark ({'quick smoke run' if args.quick else 'full run'})",
        "",
        f"`{command}`  ",
        f"{os.cpu_count()} CPUs; CPU idle before/after the run: {idle[0]:.0%} / {idle[1]:.0%} → box {busy}; "
        f"run took {seconds:.0f} s. Auth (HS256 bearer, verification cached) and RLS (role `tripsage_api` + claims) "
        "on every variant but the no-auth anchors (a0, b0, c0, f0: no token, the login role, no claims). Ratios: req/s of (d) over req/s of the row (HTTP, in-process), and for CPU the row's"
        " total CPU (app process + PostgreSQL backends) per request over (d)'s, which a busy box disturbs least."
        f" {_held(report.read_cache_mb)}{pool_sentence(report.pool)}",
        "",
        "### List of 50 trips (`limit=50`)",
        "",
        *_table(report, "list"),
        "",
        "### Single trip",
        "",
        *_table(report, "one"),
        "",
        "### Targets",
        "",
        *_verdicts(report),
        "",
        "### Per-request plumbing",
        "",
        *report.plumbing,
        "",
        "### Notes",
        "",
        *[f"- {note}" for note in report.notes],
    ]
    return "\n".join(out)
