"""gridmap backend for Slurm through sbatch, squeue, sacct and scancel."""
