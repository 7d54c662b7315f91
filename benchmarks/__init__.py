"""The sessionhub benchmark suite: every installed backend against its raw-driver floor and peers.

Run it with ``nox -s bench`` (``-- --quick``, ``-- --smoke``, ``-- --peers``),
``python -m benchmarks`` or ``python benchmarks/run.py``. The modules:

- :mod:`benchmarks.payload`: the event every subject stores;
- :mod:`benchmarks.timing`: sampling and percentiles;
- :mod:`benchmarks.servers`: Redis and MongoDB servers, as the tests get them;
- :mod:`benchmarks.floors`: the raw-driver floors;
- :mod:`benchmarks.subjects`: the sessionhub backends and the peers behind one interface;
- :mod:`benchmarks.workloads`: the workloads W1-W5 and the size plans;
- :mod:`benchmarks.results`: what a run measured;
- :mod:`benchmarks.report`: the markdown table and ``results.json``;
- :mod:`benchmarks.chart`: the append-latency chart;
- :mod:`benchmarks.completeness`: whether every row of a report is filled;
- :mod:`benchmarks.run`: the command line;
- :mod:`benchmarks.smoke_check`: the CI check that every row of a tiny run is filled.
"""
