"""`make bench`: run every benchmark module in turn; each prints its own figures.

A benchmark module exposes `main(argv=None)` and prints its figure beside a reference
measured in the same run, so ratios survive a noisy machine. Figures are never asserted.
"""

import importlib
import os
import sys
import time

BENCHMARKS = [
    # (module, argv)
    ("benchmarks.faq_bench", ["--split", "test"]),
    (
        "benchmarks.faq_bench",
        ["--split", "test", "--data", "../shared/data/faq_bench/banking77_oos"],
    ),
    ("benchmarks.demo_customer", []),
    ("benchmarks.grounding_calibration", []),
    ("benchmarks.chat_tuning_bench", []),
    ("benchmarks.compare_bench", []),
    ("benchmarks.embed_engines", []),
    ("benchmarks.ingest_throughput", []),
    ("benchmarks.retrieval_latency", []),
    ("benchmarks.chat_load", []),
    ("benchmarks.soak", []),
]


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "askhandle.settings")
    only = set(sys.argv[1:])
    failed = []
    for module, argv in BENCHMARKS:
        if only and module.rsplit(".", 1)[-1] not in only:
            continue
        print(f"\n=== {module} ===", flush=True)
        started = time.monotonic()
        try:
            importlib.import_module(module).main(argv)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            print(f"(not present: {module})")
        except Exception as exc:  # keep going: one broken benchmark must not hide the others
            failed.append(module)
            print(f"FAILED: {exc!r}", flush=True)
        print(f"--- {module}: {time.monotonic() - started:.1f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
