#!/bin/bash
# One participant per SLURM array task, then the group level once they all succeeded:
#   jid=$(sbatch --parsable slurm_array.sh)
#   sbatch --dependency=afterok:"$jid" --wrap "apptainer run --cleanenv \
#       -B /data/bids:/bids:ro -B /scratch/$USER/out:/out bidsapp.sif /bids /out group"
# Set --array to 1-N for the N rows of participants.tsv (its first line is the header).
# With the image (IMAGE) and apptainer or singularity on the node, the app runs in the
# container; without a container runtime, the installed app (BIDSAPP, default `bidsapp` on
# PATH) runs instead, and the group job is `sbatch --dependency=afterok:"$jid" --wrap
# "bidsapp /data/bids /scratch/$USER/out group"`.  BIDSAPP_ARGS adds options to every run.
# All tasks share the output folder (safe: files are renamed into place when complete); each
# has its own work folder, $WORK/sub-<label>, which a rerun of the task resumes.
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
[[ -n "$subject" ]] || { echo "no row $SLURM_ARRAY_TASK_ID in $BIDS/participants.tsv" >&2; exit 66; }
read -ra extra <<< "${BIDSAPP_ARGS:-}"
runtime=$(command -v apptainer || command -v singularity || true)
if [[ -n "$runtime" && -f "$IMAGE" ]]; then
    # --nv gives the container the node's GPU, if it has one; the app falls back to the CPU.
    "$runtime" run --cleanenv --nv \
        -B "$BIDS":/bids:ro -B "$OUT":/out -B "$WORK":/work \
        "$IMAGE" /bids /out participant --participant-label "$subject" \
        -w "/work/sub-$subject" --nprocs "$SLURM_CPUS_PER_TASK" --mem "${SLURM_MEM_PER_NODE}MB" "${extra[@]}"
else
    echo "slurm_array.sh: no container runtime or no $IMAGE; running ${BIDSAPP:-bidsapp}" >&2
    "${BIDSAPP:-bidsapp}" "$BIDS" "$OUT" participant --participant-label "$subject" \
        -w "$WORK/sub-$subject" --nprocs "$SLURM_CPUS_PER_TASK" --mem "${SLURM_MEM_PER_NODE}MB" "${extra[@]}"
fi
