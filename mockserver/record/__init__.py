"""What the mock remembers: each request's outcome, the journal built from it, coverage, and the
checks on them (`verify`)."""
