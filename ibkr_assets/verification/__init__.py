"""``verify``: prove the record is true for a strategy and date range.

Every lineage row's object exists with its sha256; Dagster's materializations and the lineage
rows match one to one; order records agree with the simulator's book; stored portfolio
snapshots equal those recomputed from fills; objects no row references are listed; the
database, object store and MLflow are reachable. ``checks`` holds the comparisons (plain data
in, ``Discrepancy`` out), ``gather``/``events``/``services`` read the stores, ``run.verify``
ties them together and ``report`` prints the table.
"""
