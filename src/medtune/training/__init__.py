"""`medtune train` internals: run directory, SFTConfig from the config, callbacks, faults, reports, dry run."""
