"""Show that a simulation's memory stays bounded however large the file: RSS sampled while a large
synthetic Parquet file is (1) streamed through the batch reader end to end and (2) simulated on
the consumer_loan policy with the shipped stress scenarios, rows written to Parquet as they come.

    .venv/bin/python scripts/batch_rss.py --rows 10000000          # writes /tmp/credo-rss.parquet once
    .venv/bin/python scripts/batch_rss.py --data big.parquet --simulate 200000

Not a test: it runs for minutes (reading) to hours (simulating 10M rows on 2 cores); the figures it
prints are what to look at - RSS after the first chunks and at the end should be about the same.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.batch.inputs import iter_chunks  # noqa: E402
from engine.batch.output import RowWriter  # noqa: E402
from engine.batch.pool import InProcessPool  # noqa: E402
from engine.batch.simulate import SimulationOptions, simulate  # noqa: E402
from engine.models.synthetic import write  # noqa: E402


def rss_mib() -> float:
    """The current resident set size (from /proc), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows to generate (without --data)")
    parser.add_argument("--data", type=Path, help="an existing Parquet file of applications")
    parser.add_argument("--simulate", type=int, default=100_000, help="rows to simulate (0: all)")
    parser.add_argument("--chunk", type=int, default=1000)
    args = parser.parse_args()
    data = args.data or Path(tempfile.gettempdir()) / "credo-rss.parquet"
    if args.data is None and not (data.exists() and pq.ParquetFile(data).metadata.num_rows == args.rows):
        print(f"writing {args.rows:,} synthetic applications to {data} ...", flush=True)
        write(args.rows, 20261201, data, applications=True)
    total = pq.ParquetFile(data).metadata.num_rows
    print(f"{data}: {total:,} rows, {pq.ParquetFile(data).metadata.num_row_groups} row groups")
    print(f"start: RSS {rss_mib():.0f} MiB")

    started, seen, step = time.perf_counter(), 0, max(total // 10, 1)
    for chunk in iter_chunks(data, args.chunk):
        seen += len(chunk)
        if seen // step != (seen - len(chunk)) // step or seen == total:
            print(f"read {seen:>12,} rows  RSS {rss_mib():7.0f} MiB  {time.perf_counter() - started:7.1f} s")

    limit = args.simulate or total
    subset = data
    if limit < total:  # the first `limit` rows, row group by row group
        subset = Path(tempfile.gettempdir()) / f"credo-rss-{limit}.parquet"
        reader = pq.ParquetFile(data)
        writer = None
        left = limit
        for batch in reader.iter_batches(batch_size=min(left, 100_000)):
            batch = batch.slice(0, min(left, batch.num_rows))
            writer = writer or pq.ParquetWriter(subset, batch.schema)
            writer.write_batch(batch)
            left -= batch.num_rows
            if left <= 0:
                break
        if writer is not None:
            writer.close()
    options = SimulationOptions(
        policy=ROOT / "policies" / "consumer_loan" / "policy.yaml",
        data=subset,
        scenarios=ROOT / "policies" / "consumer_loan" / "scenarios" / "stress.yaml",
        models_dir=ROOT / "models",
        chunk=args.chunk,
    )
    done = [0]
    mark = max(limit // 10, 1)

    def progress(n: int) -> None:
        before, done[0] = done[0], done[0] + n
        if done[0] // mark != before // mark or done[0] == limit:
            print(f"simulated {done[0]:>9,} rows  RSS {rss_mib():7.0f} MiB", flush=True)

    with tempfile.TemporaryDirectory(prefix="credo-rss-") as out:
        writer = RowWriter(Path(out))
        try:
            result = simulate(options, InProcessPool(), progress=progress, rows_sink=writer)
        finally:
            writer.close()
    print(f"done: {result.rows:,} rows x {len(result.arms)} arms, {result.timing()}, RSS {rss_mib():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
