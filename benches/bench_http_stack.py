"""HTTP stack, LIST floor, watch and memory measurements (`tenantstore bench http|floor|
watches|memory`), runnable from a checkout:

    python benches/bench_http_stack.py http --out bench-results
    python benches/bench_http_stack.py floor --stacks h11,httptools --out bench-results
    python benches/bench_http_stack.py watches --watches 1000 --out bench-results
    python benches/bench_http_stack.py memory --objects 40000 --projects 400 --out bench-results

The code lives in `tenantstore.bench.httpstack`, so the installed command runs the same
thing; see that module for what each measures and BENCHMARKS.md for the figures.
"""

from __future__ import annotations

import sys

from tenantstore.bench.httpstack import main_argv

if __name__ == "__main__":
    sys.exit(main_argv(sys.argv[1:]))
