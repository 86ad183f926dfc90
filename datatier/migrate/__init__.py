"""MySQL -> RethinkDB migration: plan (dry run), mapping files, run, verify.

One job per module: :mod:`.schema` reads information_schema, :mod:`.casts` maps column
types to RethinkDB values and knows their risks, :mod:`.mapping` loads the per-table
overrides, :mod:`.plan` decides tables, keys, indexes and verdicts, :mod:`.sampler` reads
sample rows, :mod:`.documents` turns rows into documents and per-row checksums,
:mod:`.target` is the target ABC and its RethinkDB implementation, :mod:`.runner` copies
with a checkpoint, and :mod:`.verify` compares both sides. :mod:`.service` ties them to the
configuration for the CLI.
"""
