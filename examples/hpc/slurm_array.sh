#!/bin/bash
# One participant per SLURM array task, then the group level once they all succeeded:
#   jid=$(sbatch --parsable slurm_array.sh)
#   sbatch --dependency=afterok:"$jid" --wrap "apptainer run --cleanenv \
#       -B /data/bids:/bids:ro -B /scratch/$USER/out:/out bidsapp.sif /bids /out group"
# Set --array to 1-N for the N rows of participants.tsv (its first line is the header).
#SBATCH --job-name=bidsapp
#SBATCH --array=1-6
#SBATCH --cpus-per-task=8
#SBATCH --mem=16G
#SBATCH --time=06:00:00
set -euo pipefail
BIDS=${BIDS:-/data/bids}
OUT=${OUT:-/scratch/$USER/bidsapp/out}
WORK=${WORK:-/scratch/$USER/bidsapp/work}
IMAGE=${IMAGE:-$HOME/images/bidsapp.sif}
mkdir -p "$OUT" "$WORK"
subject=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" "$BIDS/participants.tsv" | cut -f1)
# --nv gives the container the node's GPU, if it has one; the app falls back to the CPU.
apptainer run --cleanenv --nv \
    -B "$BIDS":/bids:ro -B "$OUT":/out -B "$WORK":/work \
    "$IMAGE" /bids /out participant --participant-label "$subject" \
    -w /work --nprocs "$SLURM_CPUS_PER_TASK" --mem "${SLURM_MEM_PER_NODE}MB"
