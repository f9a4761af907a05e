"""Rule train_teacher: the demo's base model, a tiny LM trained for a fixed number of steps (about 90 s on 2
cores) on documents rendered from the few-shot files through the pipeline's own prompt code, so that it
reproduces their format.

It memorises; it is not a model whose outputs mean anything (see README, "The demo model").
"""

from selfalign import prompts, seeds
from selfalign.fewshot import load_instruct_fewshot, load_judge_fewshot
from selfalign.rulekit import start_logging
from selfalign.teacher import train_teacher

log = start_logging(snakemake.log[0], "train_teacher")
cfg = dict(snakemake.params.teacher)
instruct_fewshot = load_instruct_fewshot(snakemake.input.instruct_fewshot)
judge_fewshot = load_judge_fewshot(snakemake.input.judge_fewshot)

# Responses with their tests are the longest text to memorise exactly; the toy sees them more often.
TASK_WEIGHTS = {"s2c": 1, "c2i": 1, "i2r": 2, "judge": 1}
# Several shot counts, so the toy copes with whatever shot settings the generation config uses.
shot_variants = [
    {"s2c": 8, "c2i": 8, "i2r": 1, "judge": 7},
    {"s2c": 4, "c2i": 4, "i2r": 1, "judge": 4},
    {"s2c": 2, "c2i": 2, "i2r": 1, "judge": 2},
]
# A fixed, spread-out sample of stdlib files teaches the tokenizer ordinary Python, and windows of
# them serve as unseen snippets so the toy answers S->C prompts for code outside the few-shot file.
stdlib_files = [path for _, path in seeds.python_files([seeds.stdlib_root()], ["*.py"], [])]
tokenizer_files = stdlib_files[:: max(1, len(stdlib_files) // 60)]
foreign_snippets = []
for path in tokenizer_files:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for start in range(0, max(1, len(lines) - 12), 97):
        window = "\n".join(lines[start : start + 12]).strip()
        if window:
            foreign_snippets.append(window)

per_variant = -(-cfg["documents"] // len(shot_variants))
documents = []
for i, shots in enumerate(shot_variants):
    documents += prompts.teacher_documents(
        instruct_fewshot,
        judge_fewshot,
        count=per_variant,
        seed=cfg["seed"] + i,
        shots=shots,
        weights=TASK_WEIGHTS,
        foreign_snippets=foreign_snippets,
    )
log.info("%d documents, %d tokenizer files", len(documents), len(tokenizer_files))

model_config = {
    "hidden_size": cfg["hidden_size"],
    "num_hidden_layers": cfg["num_layers"],
    "num_attention_heads": cfg["num_heads"],
    "intermediate_size": cfg["intermediate_size"],
    "vocab_size": cfg["vocab_size"],
}
result = train_teacher(
    documents,
    tokenizer_files,
    snakemake.output[0],
    steps=cfg["steps"],
    max_seconds=cfg.get("seconds"),
    seed=cfg["seed"],
    model_config=model_config,
    threads=snakemake.threads,
    log=log.info,
)
log.info("teacher trained: %s", {k: v for k, v in result.items() if k != "loss_curve"})
