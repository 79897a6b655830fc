"""MQAR: what a mixer can *learn* — Zoology's multi-query associative recall, LiquidMemory against softmax attention.

``data`` generates the task, ``models`` builds the compared LiquidLM variants, ``train`` trains one run with held-out
checkpoints, ``sweep`` runs and records a sweep, ``report`` turns results files into the table, the target verdict
and the plots; ``command`` is what ``python -m benchmarks mqar`` / ``mqar-report`` run.
"""
