# The main job's evaluation, sourced by scripts/main.sh and the studies that compare with it, so that every
# figure set beside the main job's is measured the same way:
#   source scripts/main_eval.sh; main_eval CONFIG LABEL=ADAPTER OUT [more grpo-eval flags, which win]
# One sample per prompt at the config's temperature; strict = the reply's JSON validates against the
# task's schema (math: the exact final answer). 512 new tokens for JSON: a third of the hard tier's gold
# replies need more than 256 (up to ~530), so a 256-token cap failed replies that were on their way to the
# right answer (docs/study.md, section 6). The baseline's completions are committed (docs/baseline/cache,
# keyed by model, prompts and decoding: eval/cache.py): they take ~25 min to generate and do not depend on
# training. A different model, prompt set or decoding misses the cache and generates its own; --baseline
# forces it.
# EVAL_LIMIT sets the prompts per set (200).
main_eval() {
    local config=$1 adapter=$2 out=$3
    shift 3
    .venv/bin/grpo-eval --pass-at-1 "$config" --adapter "$adapter" \
        --bench synthetic synthetic-schema Glaiveai2K Github_easy gsm8k --limit "${EVAL_LIMIT:-200}" \
        --max-tokens 512 --math-max-tokens 384 --max-model-len 2048 --cache-dir docs/baseline/cache \
        --out "$out" "$@"
}
