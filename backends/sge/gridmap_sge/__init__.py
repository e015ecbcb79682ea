"""gridmap's Grid Engine backend: jobs go to SGE through DRMAA, as array jobs."""
