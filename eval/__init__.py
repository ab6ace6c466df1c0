"""Evaluation of strict-JSON generation: `grpo-eval --pass-at-1` (eval.cli:main).

Pipeline: `eval.sets` (prompt sets, incl. external benchmarks from `curriculum.external`) ->
`eval.generate` (vLLM or transformers; `eval.constrained` for guided decoding) -> `eval.metrics`
(scored by `rewards.score`: strict / syntax / format pass, taxonomy, pass@k, CIs from `eval.stats`)
-> `eval.run` (baseline cache `eval.cache`, paired comparisons) -> `eval.report` + `eval.figures`.

Never imports `grpo`: adapters are PEFT folders, configs are read as plain TOML.
"""
