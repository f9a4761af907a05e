#!/usr/bin/env bash
# Deploy this workflow from a local clone into DEST, as snakedeploy does from GitHub: DEST gets config/,
# profiles/ and LICENSE, and a workflow/Snakefile that uses this clone's workflow/Snakefile as a module.
#   bash tools/deploy.sh DEST
# (From GitHub, use snakedeploy itself: snakedeploy deploy-workflow <repository URL> DEST --tag <tag>.)
# Why not `snakedeploy deploy-workflow <this clone> DEST`: its local provider copies the whole directory,
# virtual environments and results included, and writes the module path relative to the clone
# ("workflow/Snakefile"), which Snakemake then resolves from DEST/workflow/. Here snakedeploy reads a clean
# git clone (tracked files only) and the module path is made absolute.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: bash tools/deploy.sh DEST" >&2; exit 2; }
source_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$1"
snakedeploy="${SNAKEDEPLOY:-$source_dir/.venv/bin/snakedeploy}"
[ -x "$snakedeploy" ] || snakedeploy="$(command -v snakedeploy)" || { echo "deploy.sh: snakedeploy not found" >&2; exit 1; }
clean="$(mktemp -d)"
trap 'rm -rf "$clean"' EXIT
git clone --quiet "$source_dir" "$clean/selfalign"
branch="$(git -C "$clean/selfalign" rev-parse --abbrev-ref HEAD)"
"$snakedeploy" deploy-workflow "$clean/selfalign" "$dest" --branch "$branch" --name selfalign
snakefile="$dest/workflow/Snakefile"
grep -q '"workflow/Snakefile"' "$snakefile" || { echo "deploy.sh: unexpected module line in $snakefile" >&2; exit 1; }
sed -i "s|\"workflow/Snakefile\"|\"$source_dir/workflow/Snakefile\"|; s|$clean/selfalign|$source_dir|g" "$snakefile"
echo "deploy.sh: $dest uses $source_dir/workflow/Snakefile as a module"
