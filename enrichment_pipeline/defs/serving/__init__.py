"""The serving file BI tools read while the pipeline writes the warehouse."""
