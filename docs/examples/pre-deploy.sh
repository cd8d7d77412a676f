#!/usr/bin/env bash
# Before a manual deploy from a laptop: check, then the guarded run. Stops at the first
# refusal; on failure guard prints the restore plan and exits 1 (nothing committed) or 4.
set -euo pipefail
: "${DATABASE_URL:?set DATABASE_URL to the target database}"
reason=${1:?usage: pre-deploy.sh "why this deploy"}

guard check --shadow embedded --shadow-from-target
guard backup status
guard run --reason "$reason"
