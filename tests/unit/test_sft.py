"""SFT on CPU for real: a tiny random Llama, a tokenizer trained on the spot, 2 DeepSpeed ranks."""

from __future__ import annotations

import ast
import json
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, GPT2Config, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from selfalign.humaneval import format_instruct_prompt
from selfalign.launch import (
    LaunchError, free_port, launch_command, launch_env, planned_command, run_launch, sft_arguments,
)
from selfalign.sft import (
    IGNORE_INDEX,
    SFTCollator,
    build_trainer,
    deepspeed_config,
    gradient_accumulation_steps,
    instruct_chat_template,
    last_complete_checkpoint,
    loss_tsv,
    tokenize_example,
    zero_dropout,
)
from selfalign.shards import write_jsonl

EOS = "<|endoftext|>"
PAD = "<|pad|>"
ANIMALS = ["cat", "dog", "owl", "fox", "bee", "elk", "yak", "emu", "ant", "bat", "cod", "eel"]
ROWS = [
    {
        "instruction": f"Write a Python function `{name}_sound()` that returns the sound a {name} makes.",
        "response": f"```python\ndef {name}_sound():\n    return '{name} says hello'\n```\nIt returns a string.",
    }
    for name in ANIMALS
]
LONG_ROW = {"instruction": "Print the numbers.", "response": " ".join(str(i) for i in range(400))}


def train_tokenizer(corpus: list[str]) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=512, min_frequency=1, special_tokens=[EOS, PAD],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS, pad_token=PAD)


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    corpus = [format_instruct_prompt(r["instruction"], r["response"]) for r in ROWS + [LONG_ROW]]
    return train_tokenizer(corpus * 4)


@pytest.fixture(scope="module")
def base_model_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer: PreTrainedTokenizerFast) -> Path:
    path = tmp_path_factory.mktemp("base")
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, attention_dropout=0.1,  # sft must zero it
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_labels_mask_the_prompt_and_the_padding(tokenizer: PreTrainedTokenizerFast) -> None:
    short, longer = (tokenize_example(tokenizer, r["instruction"], r["response"], 1280) for r in ROWS[:2])
    prompt_ids = tokenizer(EOS + format_instruct_prompt(ROWS[0]["instruction"]), add_special_tokens=False)["input_ids"]
    assert short.input_ids[: len(prompt_ids)] == prompt_ids and short.input_ids[0] == tokenizer.bos_token_id
    assert short.labels[: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
    assert tokenizer.decode(short.labels[len(prompt_ids):]) == ROWS[0]["response"] + EOS
    assert not short.truncated

    batch = SFTCollator(tokenizer.pad_token_id)([longer.as_feature(), short.as_feature()][::-1])
    width = max(len(short.input_ids), len(longer.input_ids))
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape == (2, width)
    padding = width - len(short.input_ids)
    if padding:  # right padding: pad id, label -100, attention 0 after the tokens
        assert batch["input_ids"][0, -padding:].tolist() == [tokenizer.pad_token_id] * padding
        assert batch["labels"][0, -padding:].tolist() == [IGNORE_INDEX] * padding
    assert batch["attention_mask"][0].tolist() == [1] * len(short.input_ids) + [0] * padding
    assert batch["labels"][0, : len(short.labels)].tolist() == short.labels


def test_truncated_examples_are_kept_and_flagged(tokenizer: PreTrainedTokenizerFast) -> None:
    example = tokenize_example(tokenizer, LONG_ROW["instruction"], LONG_ROW["response"], 64)
    assert example.truncated and len(example.input_ids) == len(example.labels) == 64
    assert example.input_ids[-1] != tokenizer.eos_token_id  # the cut loses the EOS, as in the reference


def test_gradient_accumulation_reaches_the_target_batch() -> None:
    assert gradient_accumulation_steps(64, 1, 1) == 64
    assert gradient_accumulation_steps(64, 2, 8) == 4
    with pytest.raises(ValueError, match="not a multiple"):
        gradient_accumulation_steps(64, 1, 3)


def test_every_dropout_is_zeroed() -> None:
    llama = LlamaConfig(attention_dropout=0.1)
    assert zero_dropout(llama) == ["attention_dropout"] and llama.attention_dropout == 0.0
    gpt2 = GPT2Config()
    assert set(zero_dropout(gpt2)) >= {"attn_pdrop", "embd_pdrop", "resid_pdrop", "summary_first_dropout"}
    assert gpt2.resid_pdrop == gpt2.attn_pdrop == gpt2.embd_pdrop == 0.0


def test_chat_template_renders_the_training_layout(tokenizer: PreTrainedTokenizerFast) -> None:
    # A copy, so the shared fixture keeps no template (the saved model's template is checked on its own).
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend_tokenizer, bos_token=EOS, eos_token=EOS)
    tokenizer.chat_template = instruct_chat_template()
    question, answer = ROWS[0]["instruction"], ROWS[0]["response"]
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False)
    assert prompt == EOS + format_instruct_prompt(question)
    turn = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    assert tokenizer.apply_chat_template(turn, tokenize=False) == (
        EOS + format_instruct_prompt(question, answer + EOS) + "\n\n### Response\n"
    )
    with pytest.raises(Exception, match="not allowed"):
        tokenizer.apply_chat_template([{"role": "system", "content": "x"}, turn[0]], tokenize=False)


def test_launch_command_places_ranks() -> None:
    cmd = launch_command(2, 29600, ["--zero-stage", "2"])
    assert Path(cmd[0]) == Path(sys.executable).parent / "deepspeed"
    assert cmd[1:] == ["--num_gpus", "2", "--master_port", "29600", "--no_local_rank", "--module",
                       "selfalign.sft", "--zero-stage", "2"]
    assert launch_command(2, 1, [], visible_devices="4,5")[1:3] == ["--include", "localhost:4,5"]
    with pytest.raises(ValueError, match="visible devices"):
        launch_command(4, 1, [], visible_devices="4,5")


def test_run_launch_raises_with_the_log_tail(tmp_path: Path) -> None:
    cmd = [sys.executable, "-c", "print('step 1'); print('rank 1 failed: boom'); raise SystemExit(3)"]
    with pytest.raises(LaunchError, match="(?s)exited with 3.*rank 1 failed: boom"):
        run_launch(cmd, launch_env(2), tmp_path / "logs" / "sft.log")
    assert "rank 1 failed: boom" in (tmp_path / "logs" / "sft.log").read_text()


def test_sft_on_two_ranks_with_zero2(tmp_path: Path, base_model_dir: Path) -> None:
    data = tmp_path / "sft.jsonl"
    write_jsonl(data, ROWS + [LONG_ROW])  # 13 rows
    output = tmp_path / "sft" / "model"
    sft_args = [
        "--model", str(base_model_dir), "--data", str(data), "--output", str(output), "--zero-stage", "2",
        "--epochs", "4", "--lr", "1e-2", "--target-batch", "4", "--per-device-batch", "1",
        "--max-length", "128", "--save-steps", "6",
    ]
    env = launch_env(2, {**os.environ, "HF_HUB_OFFLINE": "1"})
    run_launch(launch_command(2, free_port(), sft_args), env, tmp_path / "sft.log")

    stats = json.loads((output / "train_stats.json").read_text())
    assert (stats["examples"], stats["exceeding_length"], stats["world_size"]) == (13, 1, 2)
    assert (stats["effective_batch"], stats["gradient_accumulation_steps"], stats["zero_stage"]) == (4, 2, 2)
    assert stats["dropout_zeroed"] == ["attention_dropout"] and stats["versions"]["deepspeed"]
    steps_per_epoch = 4  # ceil(7 micro-batches per rank / accumulation 2)
    assert stats["steps"] == 4 * steps_per_epoch == len(stats["log"])
    losses = [entry["loss"] for entry in stats["log"]]
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3, losses
    # the log a person reads: one line per step with step k/N, epoch, loss, lr and ETA, no raw dicts
    log = (tmp_path / "sft.log").read_text()
    assert re.search(r"step 1/16, epoch [\d.]+, loss [\d.]+, lr [\d.e-]+, ETA \d+m\d\ds", log), log[-2000:]
    assert "step 16/16" in log and "{'loss'" not in log

    # Linear schedule, 5% warmup (ceil(0.05 x 16) = 1 step): step s trains at lr(s - 1), so step 1 at 0.
    total, warmup = stats["steps"], 1
    expected = [1e-2 * (s / warmup if s < warmup else (total - s) / (total - warmup)) for s in range(total)]
    assert [entry["learning_rate"] for entry in stats["log"]] == pytest.approx(expected)

    assert not list(output.parent.glob(".model.*")), "staging dir left behind"
    assert not (output / "training_args.bin").exists()  # it pickles machine paths: same config, same bytes
    assert sorted(p.name for p in (tmp_path / "sft" / "model.checkpoints").glob("checkpoint-*")) == [
        "checkpoint-12", "checkpoint-16",  # every 6 steps and at the end; save_total_limit keeps two
    ]

    # The saved model reloads offline, in the training layout, and generates.
    code = (
        "import sys, torch; from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "tok = AutoTokenizer.from_pretrained(sys.argv[1]); model = AutoModelForCausalLM.from_pretrained(sys.argv[1])\n"
        "assert model.config.attention_dropout == 0.0\n"
        "messages = [{'role': 'user', 'content': sys.argv[2]}]\n"
        "ids = tok.apply_chat_template(messages, return_tensors='pt', return_dict=True)\n"
        "out = model.generate(**ids, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)\n"
        "print(repr(tok.decode(ids['input_ids'][0])))\n"
        "print(out.shape[1] - ids['input_ids'].shape[1])\n"
    )
    reload = subprocess.run(  # a fresh process: nothing cached from the training run helps the reload
        [sys.executable, "-c", code, str(output), ROWS[0]["instruction"]],
        env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, check=True,
    )
    rendered, new_tokens = reload.stdout.strip().splitlines()[-2:]
    assert ast.literal_eval(rendered) == EOS + format_instruct_prompt(ROWS[0]["instruction"])
    assert int(new_tokens) > 0
    tokenizer = AutoTokenizer.from_pretrained(output)
    assert tokenizer.chat_template == instruct_chat_template()


def test_a_killed_zero3_job_resumes_from_its_last_checkpoint(tmp_path: Path, base_model_dir: Path) -> None:
    """Kill the launcher (all ranks) after the first checkpoint, start it again: it goes on from there."""
    data = tmp_path / "sft.jsonl"
    write_jsonl(data, ROWS + [LONG_ROW])
    output = tmp_path / "sft" / "model"
    checkpoints = tmp_path / "sft" / "model.checkpoints"
    sft_args = [
        "--model", str(base_model_dir), "--data", str(data), "--output", str(output), "--zero-stage", "3",
        "--epochs", "4", "--lr", "1e-2", "--target-batch", "4", "--per-device-batch", "1",
        "--max-length", "128", "--save-steps", "2",
    ]
    env = launch_env(2, {**os.environ, "HF_HUB_OFFLINE": "1"})
    with open(tmp_path / "killed.log", "w") as log:
        first = subprocess.Popen(  # own session: killing its group kills the launcher and both ranks
            launch_command(2, free_port(), sft_args), env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 300
        while not list(checkpoints.glob("checkpoint-*/trainer_state.json")):
            assert first.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.2)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert not output.exists()

    run_launch(launch_command(2, free_port(), sft_args), env, tmp_path / "resumed.log")
    stats = json.loads((output / "train_stats.json").read_text())
    resumed_step = int(Path(stats["resumed_from"]).name.split("-")[1])
    assert 2 <= resumed_step < stats["steps"] == 4 * 4, stats["resumed_from"]
    assert [entry["step"] for entry in stats["log"]] == list(range(1, 17))  # history restored, then continued
    assert stats["optimizer"] == {
        "class": "Adafactor", "lr": 1e-2, "scale_parameter": False, "relative_step": False,
        "warmup_init": False, "weight_decay": 0.0,
    }
    # ZeRO-3 gathered the partitioned weights into a loadable model, and the curve is saved as TSV.
    assert (output / "model.safetensors").is_file()
    model = LlamaForCausalLM.from_pretrained(output)
    assert model.model.embed_tokens.weight.shape[0] == model.config.vocab_size
    rows = (output / "loss.tsv").read_text().splitlines()
    assert rows[0] == "step\tepoch\tloss\tlearning_rate" and len(rows) == 17


def test_resume_skips_a_half_written_checkpoint(tmp_path: Path) -> None:
    for step, complete in ((4, True), (8, True), (12, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-x").mkdir()  # not a checkpoint of ours: left alone
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-4", "checkpoint-8", "checkpoint-x"]
    assert last_complete_checkpoint(tmp_path / "missing") is None


def test_loss_tsv_has_one_row_per_logged_step() -> None:
    history = [
        {"step": 1, "epoch": 0.5, "loss": 2.5, "learning_rate": 0.0, "grad_norm": 1.0},
        {"step": 2, "epoch": 1.0, "loss": 2.0, "learning_rate": 1e-5},
        {"step": 2, "train_runtime": 3.0},  # the summary entry is not a step
    ]
    assert loss_tsv(history) == "step\tepoch\tloss\tlearning_rate\n1\t0.5\t2.5\t0.0\n2\t1.0\t2.0\t1e-05\n"

def test_planned_command_shows_placement_for_gpus_and_cpu_ranks() -> None:
    cfg = {"zero_stage": 2, "epochs": 1, "learning_rate": 1e-3, "target_batch": 8, "per_device_batch": 1,
           "max_length": 64, "seed": 1, "save_steps": 5}
    args = sft_arguments(cfg, "base", "train.jsonl", "out/")
    assert args[args.index("--checkpoint-dir") + 1] == "out.checkpoints"
    assert args[args.index("--loss-weighting") + 1] == "example" and args[args.index("--expect-gpus") + 1] == "0"
    assert "--gradient-checkpointing" not in args
    flagged = sft_arguments({**cfg, "gradient_checkpointing": True, "offload_optimizer": True,
                             "loss_weighting": "token"}, "base", "train.jsonl", "out", gpus=4)
    assert flagged[-4:] == ["--expect-gpus", "4", "--gradient-checkpointing", "--offload-optimizer"]
    assert flagged[flagged.index("--loss-weighting") + 1] == "token"
    assert planned_command(4, 2, args).startswith(
        "deepspeed --include localhost:<4 ids from CUDA_VISIBLE_DEVICES> --master_port <free port> --no_local_rank "
        "--module selfalign.sft --model base --data train.jsonl")
    assert planned_command(0, 2, args).startswith("deepspeed --num_gpus 2 ")


@pytest.mark.parametrize("weighting", ["example", "token"])
@pytest.mark.parametrize("per_device, accumulation", [(1, 2), (2, 1)])
def test_trainer_loss_is_the_hand_computed_batch_loss(
    tmp_path: Path, tokenizer: PreTrainedTokenizerFast, base_model_dir: Path, weighting: str, per_device: int,
    accumulation: int,
) -> None:
    """One optimizer step over two examples of different lengths: the loss the Trainer logs is the mean of
    the two per-example means (the reference's weighting), or the mean over all their tokens."""
    from transformers import AutoConfig, TrainingArguments

    examples = [tokenize_example(tokenizer, ROWS[0]["instruction"], ROWS[0]["response"], 512),
                tokenize_example(tokenizer, LONG_ROW["instruction"], LONG_ROW["response"], 512)]
    config = AutoConfig.from_pretrained(base_model_dir)
    zero_dropout(config)  # as sft.train does: the Trainer runs the model in train mode
    model = LlamaForCausalLM.from_pretrained(base_model_dir, config=config)

    token_losses = []
    with torch.no_grad():
        for example in examples:
            logits = model(input_ids=torch.tensor([example.input_ids])).logits[0, :-1]
            targets = torch.tensor(example.labels[1:])
            keep = targets != IGNORE_INDEX
            token_losses.append(torch.nn.functional.cross_entropy(logits[keep], targets[keep], reduction="none"))
    lengths = [len(losses) for losses in token_losses]
    assert lengths[1] > 5 * lengths[0]  # different enough that the two weightings differ
    per_example = sum(float(losses.mean()) for losses in token_losses) / 2
    per_token = float(torch.cat(token_losses).mean())
    assert abs(per_example - per_token) > 1e-3

    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=per_device, gradient_accumulation_steps=accumulation,
        max_steps=1, learning_rate=1e-5, optim="adafactor", logging_steps=1, save_strategy="no", report_to="none",
        use_cpu=True, seed=0, disable_tqdm=True,
    )
    trainer = build_trainer(model, args, examples, tokenizer.pad_token_id, weighting)
    trainer.train()
    logged = trainer.state.log_history[0]["loss"]
    assert logged == pytest.approx(per_example if weighting == "example" else per_token, rel=1e-4)


def test_offload_sets_what_deepspeed_needs_for_a_client_optimizer() -> None:
    config = deepspeed_config(2, offload_optimizer=True)
    assert config["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert config["zero_force_ds_cpu_optimizer"] is False
    assert "offload_optimizer" not in deepspeed_config(3, offload_optimizer=False)["zero_optimization"]
    with pytest.raises(ValueError, match="ZeRO stage 1 or higher"):
        deepspeed_config(0, offload_optimizer=True)


def test_checkpoints_of_another_run_are_not_resumed(tmp_path: Path) -> None:
    """A rerun with another SFT set (or settings) starts over instead of resuming a finished old run."""
    from selfalign.sft import RUN_KEY_NAME, clear_stale_checkpoints, parse_args, run_key

    data = tmp_path / "sft.jsonl"
    write_jsonl(data, ROWS)
    options = parse_args(["--model", "m", "--data", str(data), "--output", str(tmp_path / "out"), "--zero-stage", "2"])
    checkpoints = tmp_path / "out.checkpoints"
    (checkpoints / "checkpoint-16").mkdir(parents=True)
    (checkpoints / "checkpoint-16" / "trainer_state.json").write_text("{}")
    assert clear_stale_checkpoints(checkpoints, run_key(options))  # no key recorded: not known to be this run's
    assert not (checkpoints / "checkpoint-16").exists() and (checkpoints / RUN_KEY_NAME).is_file()

    (checkpoints / "checkpoint-4").mkdir()
    assert not clear_stale_checkpoints(checkpoints, run_key(options))  # same data, same settings: resume
    assert (checkpoints / "checkpoint-4").exists()
    write_jsonl(data, ROWS[:-1])  # the SFT set changed
    assert clear_stale_checkpoints(checkpoints, run_key(options))
    assert not (checkpoints / "checkpoint-4").exists()
    (checkpoints / "checkpoint-4").mkdir()
    options.lr = 2e-5  # a setting changed
    assert clear_stale_checkpoints(checkpoints, run_key(options))
