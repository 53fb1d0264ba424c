"""`docpipe lab serve`: a visitor of a published workshop starts a desktop of their own (issue 21)."""
