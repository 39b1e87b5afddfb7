//! Technical indicators. Each has a batch form over a slice and an incremental form.
