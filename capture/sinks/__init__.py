"""Sinks: where recorded batches go. A sink takes a batch from the recorder's writer thread and returns what
happened to it; the durable store sink owns the spool, back-off and the classification of refused batches."""
