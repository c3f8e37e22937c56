"""Files and data in and out: catalogs, inputs, outputs, pandas frames, synthetic catalogs, progress."""
