"""Fixity benchmark: an audit through damfleet's fixity code versus a plain sha256 loop over the
same stored originals, in the same run.

    .venv/bin/python bench/fixity.py [--assets 20] [--size-mb 32] [--rounds 3] [--throttle-mb 64]

What it does:
- stores ``--assets`` originals of ``--size-mb`` random bytes under a file:// storage root,
  each with the ingest record (``metadata/technical.json`` with its sha256) ingest writes;
- ``audit`` phase: what the fixity activities run, minus Temporal: :func:`damfleet.fixity.plan_audit`
  lists the assets into pages, :func:`damfleet.fixity.verify_page` streams and re-hashes each
  original through the storage layer and compares it with the record (unthrottled), and
  writes the page findings; every asset must come back OK;
- ``plain`` phase: ``hashlib.sha256`` over each original file, read in the same 1 MiB chunks;
- ``throttled`` phase: the audit again with ``DAMFLEET_FIXITY_BYTES_PER_SECOND`` set to
  ``--throttle-mb`` MiB/s, to show the budget holds: the rate after the token bucket's
  one-second burst, divided by the budget, stays at or just under 1;
- each phase runs in its own child process, so its peak RSS is its own; the audit and the
  plain phase alternate which goes first, and the median of the per-round ratios is
  reported (the machine is shared: back-to-back pairs are the fairest comparison). The
  files are read once before timing, so both phases read from the page cache.

Prints progress to stderr and ends with ONE line of JSON on stdout, ratios first.
Goal (issue 16): throughput_vs_plain_ratio >= 0.8.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._support import log

MiB = 1024 * 1024


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _settings(root: Path, bytes_per_second: int) -> Any:
    from damfleet.settings import load_settings

    return load_settings({
        "DAMFLEET_STATE_DIR": str(root / "state"),
        "DAMFLEET_STORAGE_ROOT": (root / "storage").as_uri(),
        "DAMFLEET_WORKER_SCRATCH_DIR": str(root / "scratch"),
        "DAMFLEET_FIXITY_BYTES_PER_SECOND": str(bytes_per_second),
    })


def _write_random(path: Path, size: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        left = size
        while left:
            block = os.urandom(min(MiB, left))
            digest.update(block)
            fh.write(block)
            left -= len(block)
    return digest.hexdigest()


async def _prepare(root: Path, assets: int, size: int) -> list[Path]:
    """Originals and ingest records in the layout ingest leaves (random bytes: no media tools)."""
    from damfleet.storage import Storage, path_from_uri

    storage = Storage.from_settings(_settings(root, 0))
    paths = []
    for i in range(assets):
        asset_id = f"bench-{i:05d}"
        keys = storage.keys(asset_id)
        original = path_from_uri(keys.original("original.bin"))
        sha256 = _write_random(original, size)
        record = {"asset_id": asset_id, "sha256": sha256, "size_bytes": size,
                  "original_uri": original.as_uri(), "source_uri": "file:///bench/original.bin"}
        await storage.write_bytes(keys.technical_metadata(), json.dumps(record).encode())
        paths.append(original)
    await storage.aclose()
    return paths


async def _audit(root: Path, audit_id: str, bytes_per_second: int) -> dict[str, Any]:
    from damfleet import fixity
    from damfleet.storage import Storage
    from damfleet.v1 import fixity_pb2

    settings = _settings(root, bytes_per_second)
    storage = Storage.from_settings(settings)
    throttle = fixity.ByteThrottle(settings.fixity.bytes_per_second)
    scratch = settings.scratch_path
    scratch.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    plan = await fixity.plan_audit(fixity_pb2.FixityPlanInput(audit_id=audit_id, page_size=500),
                                   storage=storage, settings=settings)
    counts = fixity_pb2.FixityCounts()
    for page in range(plan.page_count):
        result = await fixity.verify_page(
            fixity_pb2.FixityPageInput(audit_id=audit_id, pages_prefix=plan.pages_prefix, page=page,
                                       findings_prefix=plan.audit_prefix + "findings/"),
            storage=storage, throttle=throttle, scratch=scratch,
        )
        counts.checked += result.counts.checked
        counts.ok += result.counts.ok
        counts.bytes_read += result.counts.bytes_read
    seconds = time.perf_counter() - started
    await storage.aclose()
    if counts.ok != plan.total_assets or counts.checked != plan.total_assets:
        raise SystemExit(f"audit found damage in the bench data: {counts}")
    return {"seconds": seconds, "bytes": counts.bytes_read}


def _plain(paths: list[Path]) -> dict[str, Any]:
    started = time.perf_counter()
    total = 0
    for path in paths:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(MiB):
                digest.update(chunk)
                total += len(chunk)
        digest.hexdigest()
    return {"seconds": time.perf_counter() - started, "bytes": total}


def _child(args: argparse.Namespace) -> None:
    """Run one phase in this process and print its figures as JSON."""
    root = Path(args.root)
    cpu = time.process_time()
    if args.phase == "plain":
        paths = sorted((root / "storage" / "assets").rglob("original.bin"))
        out = _plain(paths)
    else:
        rate = int(args.throttle_mb * MiB) if args.phase == "throttled" else 0
        out = asyncio.run(_audit(root, f"{args.phase}-{time.time_ns()}", rate))
    out["cpu_seconds"] = time.process_time() - cpu
    out["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(out))


def _phase(root: Path, phase: str, throttle_mb: float) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--phase", phase, "--root", str(root), "--throttle-mb", str(throttle_mb)],
        capture_output=True, text=True, timeout=3600, check=False, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    if proc.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=int, default=20)
    parser.add_argument("--size-mb", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--throttle-mb", type=float, default=64.0)
    parser.add_argument("--phase", choices=("audit", "plain", "throttled"), help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        _child(args)
        return

    with tempfile.TemporaryDirectory(prefix="damfleet-bench-fixity-") as tmp:
        root = Path(tmp)
        log(f"storing {args.assets} originals of {args.size_mb} MiB ...")
        paths = asyncio.run(_prepare(root, args.assets, args.size_mb * MiB))
        _plain(paths)  # warm the page cache: both phases then read from memory
        ratios, audits, plains = [], [], []
        for round_number in range(args.rounds):
            order = ("audit", "plain") if round_number % 2 == 0 else ("plain", "audit")
            got = {phase: _phase(root, phase, args.throttle_mb) for phase in order}
            audit_rate = got["audit"]["bytes"] / got["audit"]["seconds"] / MiB
            plain_rate = got["plain"]["bytes"] / got["plain"]["seconds"] / MiB
            ratios.append(audit_rate / plain_rate)
            audits.append(got["audit"])
            plains.append(got["plain"])
            log(f"round {round_number + 1}: audit {audit_rate:.0f} MiB/s, plain {plain_rate:.0f} MiB/s, "
                 f"ratio {ratios[-1]:.3f}")
        log(f"throttled audit at {args.throttle_mb:g} MiB/s ...")
        throttled = _phase(root, "throttled", args.throttle_mb)
        throttled_rate = throttled["bytes"] / throttled["seconds"] / MiB
        # The token bucket lets the first second's budget through at once; the sustained
        # rate (after that burst) is what the budget promises.
        sustained_rate = (throttled["bytes"] / MiB - args.throttle_mb) / throttled["seconds"]
        log(f"throttled: {throttled_rate:.1f} MiB/s overall, {sustained_rate:.1f} MiB/s after the burst")

    total_mb = args.assets * args.size_mb
    print(json.dumps({
        "throughput_vs_plain_ratio": round(statistics.median(ratios), 3),
        "throttle_sustained_vs_budget_ratio": round(sustained_rate / args.throttle_mb, 3),
        "cpu_vs_plain_ratio": round(statistics.median(a["cpu_seconds"] for a in audits)
                                    / statistics.median(p["cpu_seconds"] for p in plains), 3),
        "audit_mb_s": round(statistics.median(a["bytes"] / a["seconds"] / MiB for a in audits), 1),
        "plain_mb_s": round(statistics.median(p["bytes"] / p["seconds"] / MiB for p in plains), 1),
        "throttled_mb_s": round(throttled_rate, 1),
        "peak_rss_mb_audit": round(max(a["peak_rss_mb"] for a in audits), 1),
        "peak_rss_mb_plain": round(max(p["peak_rss_mb"] for p in plains), 1),
        "assets": args.assets,
        "size_mb_each": args.size_mb,
        "total_mb": total_mb,
        "rounds": args.rounds,
        "ratios": [round(r, 3) for r in ratios],
    }))


if __name__ == "__main__":
    main()
