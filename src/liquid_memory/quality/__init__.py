"""Quality benchmarks: what a mixer can *learn*, measured against softmax attention (``liquid-memory quality``).

``mqar_data`` generates Zoology's multi-query associative recall task, ``mqar_models`` builds the compared
LiquidLM variants, ``mqar_train`` trains one run with held-out checkpoints, ``mqar_sweep`` runs and records a
sweep, ``mqar_report`` turns results files into the table, the target verdict and the plots.
"""
