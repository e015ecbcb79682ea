"""gridmap's Slurm backend over slurm-drmaa: jobs go to Slurm through DRMAA, as arrays."""
