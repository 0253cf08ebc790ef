"""Deciding and producing an answer: the plan (which fault or stub, how late, how many images),
faults, stubs, the one matcher model, image URLs and rendering, the upstream and recording."""
