"""One package per application; each has the same files: config, data, model, train and a thin __main__."""
