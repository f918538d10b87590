"""The project's own benchmark: aiosmtpd 2 against aiosmtpd 1.4.6 and Postfix's smtp-sink.

``run.py`` is the entry point (``python benchmarks/run.py --quick``). The package is split by
what each module owns: ``procstat`` reads a server's CPU and memory from ``/proc``,
``servers`` starts and kills the servers under test (and builds the 1.4.6 reference venv),
``client`` is the built-in asyncio SMTP load generator, ``scenarios`` turns a load into
measured figures, and ``report`` turns figures into ratios, tables, JSON and a plot.

Nothing here is imported by the library; the library must not import anything from here.
"""
